//! The admin router's HTML: the debug page (plain HTML and a little JavaScript, no build
//! step; it reads the router's JSON routes) and the graph page.

use axum::response::Html;

use crate::graph::svg::escape;
use crate::graph::Graph;

/// `GET /`: the debug page.
pub(super) async fn debug_page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

/// `GET /graph?format=html`: the drawing, and the Mermaid and DOT sources to paste elsewhere.
pub(super) fn graph_page(graph: &Graph) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>cache: graph</title></head><body style=\"font-family: sans-serif\">\
         <h1>The invalidation graph</h1>{svg}\
         <h2>Mermaid</h2><pre>{mermaid}</pre><h2>Graphviz DOT</h2><pre>{dot}</pre>\
         </body></html>",
        svg = graph.to_svg(),
        mermaid = escape(&graph.to_mermaid()),
        dot = escape(&graph.to_dot()),
    ))
}
