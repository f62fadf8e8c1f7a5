//! The Qdrant-compatible REST subset: collections (create, get, list, exists, delete), payload
//! indexes, points (upsert, retrieve, delete, payload operations, scroll, count), search, search
//! batch, the universal query with `prefetch` and fusion, and collection snapshots (create, list,
//! download, delete, recover). Same paths, JSON shapes, filter
//! syntax and envelope as Qdrant's REST API; differences are listed in `docs/SERVER.md`.

pub mod collections;
pub mod convert;
pub mod models;
pub mod points;
pub mod search;
pub mod snapshots;

use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes, with their OpenAPI descriptions.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(collections::list_collections))
        .routes(routes!(
            collections::create_collection,
            collections::get_collection,
            collections::delete_collection
        ))
        .routes(routes!(collections::collection_exists))
        .routes(routes!(collections::create_index))
        .routes(routes!(collections::delete_index))
        .routes(routes!(points::upsert, points::retrieve))
        .routes(routes!(points::get_point))
        .routes(routes!(points::delete_points))
        .routes(routes!(points::set_payload, points::overwrite_payload))
        .routes(routes!(points::delete_payload))
        .routes(routes!(points::clear_payload))
        .routes(routes!(points::scroll))
        .routes(routes!(points::count))
        .routes(routes!(search::search))
        .routes(routes!(search::search_batch))
        .routes(routes!(search::query))
        .routes(routes!(search::query_batch))
        .routes(routes!(snapshots::create_snapshot, snapshots::list_snapshots))
        .routes(routes!(snapshots::get_snapshot, snapshots::delete_snapshot))
        .routes(routes!(snapshots::recover_snapshot))
}
