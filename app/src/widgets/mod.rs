//! Small drawing pieces the built-in pages share: rate charts and the pipeline graph.
//! Plain SVG computed in Rust, so the server's first paint already shows them.

mod graph;
mod rates;

pub(crate) use graph::PipelineGraph;
pub(crate) use rates::RateChart;
