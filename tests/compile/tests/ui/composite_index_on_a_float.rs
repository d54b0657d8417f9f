use cached_runtime::CachedEntity;

#[derive(CachedEntity, Clone)]
#[cache(table = "tasks", index(project_id, weight))]
struct Task {
    #[cache(id)]
    id: i64,
    project_id: i64,
    weight: f64,
}

fn main() {}
