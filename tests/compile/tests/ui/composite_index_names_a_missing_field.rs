use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone)]
#[cache(table = "tasks", index(project_id, stauts))]
struct Task {
    #[cache(id)]
    id: i64,
    project_id: i64,
    status: String,
}

fn main() {}
