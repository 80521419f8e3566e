//! The pipeline drawn as a graph: stages as nodes in columns by depth, arrows for the
//! edges labelled with the queue waiting at their end, the bottleneck marked.

use flowdeck_protocol::Snapshot;
use leptos::prelude::*;

const NODE_W: f64 = 150.0;
const NODE_H: f64 = 58.0;
const COL: f64 = 200.0;
const ROW: f64 = 78.0;
const PAD: f64 = 10.0;
/// Left margin for the "input" arrows.
const IN: f64 = 60.0;

/// Each stage's column: the longest path to it from the input (0 for the first stages).
pub(crate) fn columns(snapshot: &Snapshot) -> Vec<usize> {
    let n = snapshot.stages.len();
    let mut col = vec![0usize; n];
    // Longest path in a DAG by relaxation; n rounds are enough and the graph is small.
    for _ in 0..n {
        let mut changed = false;
        for e in &snapshot.edges {
            if let Some(from) = e.from {
                let (f, t) = (usize::from(from), usize::from(e.to));
                if f < n && t < n && col[t] < col[f] + 1 {
                    col[t] = col[f] + 1;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    col
}

#[component]
pub(crate) fn PipelineGraph(snapshot: Snapshot) -> impl IntoView {
    let cols = columns(&snapshot);
    let mut rows_in_col = vec![0usize; cols.iter().max().map_or(1, |m| m + 1)];
    let pos: Vec<(f64, f64)> = cols
        .iter()
        .map(|&c| {
            let r = rows_in_col[c];
            rows_in_col[c] += 1;
            (IN + PAD + c as f64 * COL, PAD + r as f64 * ROW)
        })
        .collect();
    let width = IN + PAD * 2.0 + rows_in_col.len() as f64 * COL;
    let height = PAD * 2.0 + rows_in_col.iter().max().copied().unwrap_or(1) as f64 * ROW;
    let bottleneck = snapshot.bottleneck();
    let edges = snapshot
        .edges
        .iter()
        .filter_map(|e| {
            let (tx, ty) = *pos.get(usize::from(e.to))?;
            let (fx, fy) = match e.from {
                Some(f) => {
                    let (x, y) = *pos.get(usize::from(f))?;
                    (x + NODE_W, y + NODE_H / 2.0)
                }
                None => (PAD, ty + NODE_H / 2.0),
            };
            let (x2, y2) = (tx, ty + NODE_H / 2.0);
            let queued = snapshot
                .stages
                .get(usize::from(e.to))
                .map_or(0, |s| s.queued);
            let broadcast = e.broadcast;
            Some(view! {
                <g class="edge" class:broadcast=broadcast>
                    {broadcast.then(|| view! { <title>"broadcast: every output is copied here"</title> })}
                    <line x1=fx y1=fy x2=x2 y2=y2 marker-end="url(#arrow)"/>
                    <text x=(fx + x2) / 2.0 y=(fy + y2) / 2.0 - 5.0 text-anchor="middle">
                        {format!("q {}", crate::format::count(queued))}
                    </text>
                </g>
            })
        })
        .collect_view();
    let nodes = snapshot
        .stages
        .iter()
        .zip(&pos)
        .enumerate()
        .map(|(i, (stage, &(x, y)))| {
            let hot = bottleneck == Some(i);
            // The health warnings firing about this stage, as the node's tooltip.
            let warned: Vec<String> = snapshot
                .warnings
                .iter()
                .filter(|w| w.firing() && w.stage.as_deref() == Some(stage.name.as_str()))
                .map(|w| format!("{}: {}", w.rule.title(), w.message))
                .collect();
            let n = warned.len();
            let warned_any = n > 0;
            view! {
                <g class="node" class:bottleneck=hot class:warned=warned_any class:join=stage.join.is_some()
                    data-stage=stage.name.clone() data-warnings=n>
                    {(n > 0).then(|| view! { <title>{warned.join("\n")}</title> })}
                    <rect x=x y=y width=NODE_W height=NODE_H rx="8"/>
                    {(n > 0).then(|| view! {
                        <g class="node-warning">
                            <circle cx=x + NODE_W - 12.0 cy=y + 12.0 r="9"/>
                            <text x=x + NODE_W - 12.0 y=y + 16.0 text-anchor="middle">{n}</text>
                        </g>
                    })}
                    <text x=x + 10.0 y=y + 20.0 class="node-name">
                        {stage.name.clone()} {hot.then_some(" ⚠")}
                    </text>
                    <text x=x + 10.0 y=y + 38.0 class="node-stat">
                        {match &stage.join {
                            Some(j) => format!(
                                "{} · oldest {}",
                                crate::format::rate(stage.throughput),
                                crate::format::millis(j.oldest_ms)
                            ),
                            None => format!("{} · {} busy", crate::format::rate(stage.throughput), stage.in_flight),
                        }}
                    </text>
                    <text x=x + 10.0 y=y + 52.0 class="node-stat">
                        {match &stage.join {
                            // A join: the groups it waits for, and their parts arrived of
                            // expected (the line above says how long the oldest waited).
                            Some(j) => format!(
                                "⋈ {} groups · {}/{}",
                                crate::format::count(j.waiting),
                                crate::format::count(j.arrived),
                                crate::format::count(j.expected)
                            ),
                            None => format!("{} failed", crate::format::count(stage.failed)),
                        }}
                    </text>
                </g>
            }
        })
        .collect_view();
    let label = format!(
        "Pipeline graph of {} stages{}",
        snapshot.stages.len(),
        bottleneck
            .and_then(|b| snapshot.stages.get(b))
            .map(|s| format!("; the bottleneck is {}", s.name))
            .unwrap_or_default()
    );
    view! {
        <svg class="pipeline-graph" viewBox=format!("0 0 {width} {height}") role="img" aria-label=label
            data-testid="pipeline-graph">
            <defs>
                <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse">
                    <path d="M 0 0 L 10 5 L 0 10 z"/>
                </marker>
            </defs>
            <text x=PAD y=PAD + 10.0 class="node-stat">"input"</text>
            {edges}
            {nodes}
        </svg>
    }
}

#[cfg(test)]
mod tests {
    use flowdeck_protocol::{Edge, StageSnapshot};

    use super::*;

    #[test]
    fn columns_follow_the_longest_path() {
        // 0 -> 1 -> 3, 0 -> 2 -> 3, and 0 -> 3 directly.
        let edge = |from: Option<u16>, to| Edge {
            from,
            to,
            broadcast: false,
        };
        let snap = Snapshot {
            stages: vec![StageSnapshot::default(); 4],
            edges: vec![
                edge(None, 0),
                edge(Some(0), 1),
                edge(Some(0), 2),
                edge(Some(1), 3),
                edge(Some(2), 3),
                edge(Some(0), 3),
            ],
            ..Snapshot::default()
        };
        assert_eq!(columns(&snap), [0, 1, 1, 2]);
    }
}
