//! Two cached types that share a namespace name (here two `Ticket`s of different modules, each
//! named `ticket` by default): keys such as `ticket:1` would name either one in the broadcast,
//! the shared cache and `Cache-Invalidate`, so the first context built refuses to start and
//! says which types clash and how to fix it. (A binary of its own: the clash is in its registry,
//! so no context of this binary can be built.)

use cached_runtime::Context;
use sqlx::sqlite::SqlitePoolOptions;

mod billing {
    use cached_runtime::prelude::*;

    #[derive(CachedEntity, Clone, Debug)]
    #[cache(table = "billing_tickets")]
    pub struct Ticket {
        #[cache(id)]
        pub id: i64,
        pub total: i64,
    }
}

mod support {
    use cached_runtime::prelude::*;

    #[derive(CachedEntity, Clone, Debug)]
    #[cache(table = "support_tickets")]
    pub struct Ticket {
        #[cache(id)]
        pub id: i64,
        pub note: String,
    }
}

#[tokio::test]
async fn two_types_sharing_a_namespace_are_refused_with_the_fix() {
    let pool = SqlitePoolOptions::new()
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Context::new(pool)));
    let message = match built {
        Ok(_) => panic!("a context was built over two types sharing `ticket`"),
        Err(panic) => match panic.downcast::<String>() {
            Ok(message) => *message,
            Err(_) => panic!("the panic carries no message"),
        },
    };
    assert!(
        message.starts_with("two types named `Ticket` share the cache namespace `ticket`"),
        "{message}"
    );
    assert!(message.contains("#[cache(name = \"...\")]"), "{message}");
    // (The types are otherwise unused here.)
    let _ = (
        billing::Ticket { id: 1, total: 2 },
        support::Ticket {
            id: 1,
            note: String::new(),
        },
    );
}
