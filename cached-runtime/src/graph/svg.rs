//! The graph drawn as SVG, for a browser with no Graphviz or Mermaid at hand (the admin
//! router's `GET /graph?format=svg`): entities and views on a circle, `relates_to` edges
//! solid, view reads dashed.

use std::f64::consts::PI;
use std::fmt::Write as _;

use super::inspect::Graph;

/// Escapes text for an XML or HTML text node or attribute.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Graph {
    /// An SVG drawing of the graph: each entity a box and each view a rounded box, placed on
    /// a circle; an arrow per `relates_to` edge (labelled with its foreign key) and a dashed
    /// one per view read (`reads_all` thicker).
    pub fn to_svg(&self) -> String {
        let names: Vec<(&str, bool)> = self
            .entities
            .iter()
            .map(|e| (e.type_name, false))
            .chain(self.views.iter().map(|v| (v.type_name, true)))
            .collect();
        let n = names.len().max(1) as f64;
        let radius = (n * 28.0).max(140.0);
        let (cx, cy) = (radius + 110.0, radius + 40.0);
        let at = |name: &str| {
            let i = names.iter().position(|(m, _)| *m == name).unwrap_or(0) as f64;
            let angle = 2.0 * PI * i / n - PI / 2.0;
            (cx + radius * angle.cos(), cy + radius * angle.sin())
        };
        let mut out = String::new();
        let _ = write!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" \
             font-family=\"sans-serif\" font-size=\"12\">\
             <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
             markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\">\
             <path d=\"M0,0 L10,5 L0,10 z\"/></marker></defs>",
            w = 2.0 * cx,
            h = 2.0 * cy,
        );
        let mut edge = |from: &str, to: &str, label: &str, style: &str| {
            let ((x1, y1), (x2, y2)) = (at(from), at(to));
            // Stop short of the target's box.
            let (dx, dy) = (x2 - x1, y2 - y1);
            let len = (dx * dx + dy * dy).sqrt().max(1.0);
            let (x2, y2) = (x2 - dx / len * 24.0, y2 - dy / len * 24.0);
            let _ = write!(
                out,
                "<line x1=\"{x1:.0}\" y1=\"{y1:.0}\" x2=\"{x2:.0}\" y2=\"{y2:.0}\" \
                 stroke=\"#555\" {style} marker-end=\"url(#arrow)\"/>\
                 <text x=\"{:.0}\" y=\"{:.0}\" fill=\"#555\">{}</text>",
                (x1 + x2) / 2.0,
                (y1 + y2) / 2.0 - 3.0,
                escape(label)
            );
        };
        for e in &self.entities {
            for r in e.relations {
                edge(e.type_name, r.target, r.column, "");
            }
        }
        for v in &self.views {
            for read in v.reads.iter().map(|m| m().type_name) {
                edge(v.type_name, read, "reads", "stroke-dasharray=\"5,4\"");
            }
            for read in v.reads_all.iter().map(|m| m().type_name) {
                edge(
                    v.type_name,
                    read,
                    "reads_all",
                    "stroke-dasharray=\"5,4\" stroke-width=\"2.5\"",
                );
            }
        }
        for (name, view) in &names {
            let (x, y) = at(name);
            let width = 14.0 + 7.5 * name.len() as f64;
            let (rounded, fill) = if *view {
                (10, "#fdf1d8")
            } else {
                (2, "#e3eefc")
            };
            let _ = write!(
                out,
                "<g class=\"{kind}\"><rect x=\"{:.0}\" y=\"{:.0}\" width=\"{width:.0}\" \
                 height=\"24\" rx=\"{rounded}\" fill=\"{fill}\" stroke=\"#333\"/>\
                 <text x=\"{x:.0}\" y=\"{:.0}\" text-anchor=\"middle\">{}</text></g>",
                x - width / 2.0,
                y - 12.0,
                y + 4.0,
                escape(name),
                kind = if *view { "view" } else { "entity" },
            );
        }
        out.push_str("</svg>\n");
        out
    }
}
