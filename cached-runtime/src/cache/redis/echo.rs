//! Whether a subscription still delivers: the listener hears this instance's own messages.
//!
//! A subscription can stay open and answer `PING` while nothing published reaches it: on a
//! Redis Cluster, a message travels from the node it was published on to the listener's node
//! over the cluster bus, and a bus link that is down (a node just restarted, a partition
//! between two nodes) drops it without a trace. The other instances' silence reveals that
//! only for instances this one has already heard of. Its own messages reveal it for all: every
//! message Redis took from this instance must come back to its listener, so one not heard
//! within the silence bound means the subscription is deaf, and the listener treats it as a
//! lost one (it subscribes again, on the next node, and clears).

use std::time::{Duration, Instant};

/// What the listener knows of its own messages coming back.
#[derive(Debug, Default)]
pub(super) struct Echo {
    /// The highest number of this instance's own messages heard since subscribing.
    heard: u64,
    /// The last number Redis had taken when the subscription was first checked: what it took
    /// before may have been published before the subscription existed, and never comes.
    floor: Option<u64>,
    /// A number Redis took after `floor`, and when the listener first saw it taken.
    awaited: Option<(u64, Instant)>,
}

impl Echo {
    /// After (re)subscribing: nothing taken so far is owed to this subscription.
    pub(super) fn restart(&mut self) {
        *self = Echo::default();
    }

    /// This instance's own message numbered `seq` came back.
    pub(super) fn heard(&mut self, seq: u64) {
        self.heard = self.heard.max(seq);
    }

    /// Checked on each tick with the number of the last message Redis took from this instance:
    /// whether one taken after the subscription has not come back within `bound`.
    pub(super) fn deaf(&mut self, taken: u64, bound: Duration) -> bool {
        let Some(floor) = self.floor else {
            // The first check after subscribing (a tick later): what was taken up to now may
            // have been taken before the subscription.
            self.floor = Some(taken);
            return false;
        };
        if let Some((seq, since)) = self.awaited {
            if self.heard >= seq {
                self.awaited = None;
            } else if since.elapsed() > bound {
                return true;
            }
        }
        if self.awaited.is_none() && taken > floor.max(self.heard) {
            self.awaited = Some((taken, Instant::now()));
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: Duration = Duration::from_millis(30);

    #[test]
    fn what_was_taken_before_the_first_check_is_not_owed() {
        let mut echo = Echo::default();
        assert!(!echo.deaf(5, BOUND));
        std::thread::sleep(BOUND * 2);
        assert!(!echo.deaf(5, BOUND), "nothing taken since");
    }

    #[test]
    fn a_message_taken_and_heard_back_keeps_it_listening() {
        let mut echo = Echo::default();
        assert!(!echo.deaf(5, BOUND));
        assert!(!echo.deaf(6, BOUND));
        echo.heard(6);
        std::thread::sleep(BOUND * 2);
        assert!(!echo.deaf(7, BOUND));
        echo.heard(7);
        std::thread::sleep(BOUND * 2);
        assert!(!echo.deaf(7, BOUND));
    }

    #[test]
    fn a_message_taken_and_not_heard_within_the_bound_is_deafness() {
        let mut echo = Echo::default();
        assert!(!echo.deaf(5, BOUND));
        assert!(!echo.deaf(6, BOUND), "awaited from now");
        assert!(!echo.deaf(7, BOUND), "within the bound");
        echo.heard(5); // an older one does not answer for 6
        std::thread::sleep(BOUND * 2);
        assert!(echo.deaf(8, BOUND));
    }

    #[test]
    fn an_echo_heard_before_its_number_was_seen_taken_counts() {
        // The message can come back before the publisher has read Redis's reply.
        let mut echo = Echo::default();
        assert!(!echo.deaf(5, BOUND));
        echo.heard(6);
        assert!(!echo.deaf(6, BOUND));
        std::thread::sleep(BOUND * 2);
        assert!(!echo.deaf(6, BOUND));
    }

    #[test]
    fn a_new_subscription_owes_nothing_the_last_one_did() {
        let mut echo = Echo::default();
        assert!(!echo.deaf(5, BOUND));
        assert!(!echo.deaf(6, BOUND));
        std::thread::sleep(BOUND * 2);
        echo.restart();
        assert!(!echo.deaf(6, BOUND));
        std::thread::sleep(BOUND * 2);
        assert!(!echo.deaf(6, BOUND));
    }
}
