//! The Chart widget: series over time drawn on a canvas, as lines, areas or bars, with a
//! legend and a tooltip. A canvas, not SVG: a day of several series is tens of thousands
//! of points, which as SVG nodes would stall the page; decimated into pixel columns
//! ([`super::series::decimate`]) the canvas draws any number of points in one pass.

use flowdeck_protocol::{
    metrics::{Agg, SeriesData},
    page::{format_value, ChartSpec, ChartStyle, SeriesRef},
};
use leptos::{html, prelude::*};

use std::time::Duration;

use flowdeck_protocol::metrics::SeriesQuery;

use super::{
    poll::{settle, ticker, CHART_POINTS},
    series::legend_names,
};
use crate::fetch::fetch_series;

/// Colours a chart cycles through (CSS variables `--series-1` and on).
const COLOURS: usize = 6;

/// A chart from a page spec.
#[component]
pub(crate) fn ChartWidget(spec: ChartSpec) -> impl IntoView {
    view! {
        <ChartView
            series=Signal::stored(spec.series)
            style=Signal::stored(spec.style)
            range=Signal::stored(spec.range)
            agg=Signal::stored(spec.agg)
        />
    }
}

/// What a chart asked for: its series, aggregation and range. A delta only joins lines
/// read for the same question.
type Question = (Vec<SeriesRef>, Option<Agg>, u64);

/// The lines a chart draws: one per series the references matched.
#[derive(Clone, Debug, Default, PartialEq)]
struct Lines {
    question: Question,
    lines: Vec<SeriesData>,
    from: u64,
    to: u64,
}

impl Lines {
    fn of(question: Question, series: Vec<SeriesData>) -> Self {
        let mut l = Lines {
            question,
            lines: series,
            from: 0,
            to: 0,
        };
        l.bound();
        l
    }

    /// Recomputes the time bounds from the newest point and drops what fell out of range.
    fn bound(&mut self) {
        let range = self.question.2;
        self.to = self
            .lines
            .iter()
            .filter_map(|s| s.points.last().map(|p| p.0 + s.step))
            .max()
            .unwrap_or(range);
        self.from = self.to.saturating_sub(range);
        let from = self.from;
        for s in &mut self.lines {
            let old = s.points.partition_point(|p| p.0 < from);
            s.points.drain(..old);
        }
    }

    /// Where the next delta starts: the newest window, which may have been partial.
    fn since(&self) -> Option<u64> {
        self.lines
            .iter()
            .filter_map(|s| s.points.last().map(|p| p.0))
            .min()
    }

    /// Joins a delta read from `since` on: each line keeps its points before `since` and
    /// takes the delta's from there; a series seen for the first time is added.
    fn merge(&mut self, delta: Vec<SeriesData>, since: u64) {
        for d in delta {
            match self.lines.iter_mut().find(|l| l.key == d.key) {
                Some(l) => {
                    l.points.retain(|p| p.0 < since);
                    l.points.extend(d.points);
                }
                None => self.lines.push(d),
            }
        }
        self.bound();
    }

    /// The value of each line nearest to time `t`, if one lies within 2% of the range
    /// (a pointer a pixel or two off the data still reads it; one over a gap does not).
    fn at(&self, t: u64) -> Vec<Option<f64>> {
        let reach = (self.to - self.from) / 50;
        self.lines
            .iter()
            .map(|s| {
                s.points
                    .iter()
                    .filter_map(|&(at, v)| Some((at, v?)))
                    .min_by_key(|p| p.0.abs_diff(t))
                    .filter(|p| p.0.abs_diff(t) <= reach.max(s.step))
                    .map(|p| p.1)
            })
            .collect()
    }
}

/// A chart whose series, style, range and aggregation may change (the Metrics page
/// changes them). The first read brings the whole range; after that, each second brings
/// only the newest windows, so a chart of 100,000 points moves a few hundred a second.
#[component]
pub(crate) fn ChartView(
    series: Signal<Vec<SeriesRef>>,
    style: Signal<ChartStyle>,
    range: Signal<u64>,
    agg: Signal<Option<Agg>>,
    /// A stored run to read instead of the live series: its minutes are read once.
    #[prop(default = None)]
    run: Option<i64>,
) -> impl IntoView {
    let lines = RwSignal::new(None::<Result<Lines, String>>);
    let tick = ticker(Duration::from_secs(1));
    let data = Resource::new(
        move || {
            (
                series.get(),
                agg.get(),
                range.get(),
                run.is_none().then(|| tick.get()),
            )
        },
        move |(series, agg, range, _)| {
            let question: Question = (series.clone(), agg, range);
            let since = lines.with_untracked(|l| match l {
                Some(Ok(l)) if l.question == question => l.since(),
                _ => None,
            });
            async move {
                let answer = if series.is_empty() {
                    Ok(Ok(Vec::new()))
                } else {
                    fetch_series(
                        SeriesQuery {
                            series,
                            agg,
                            range,
                            step: Some((range / CHART_POINTS).max(1)),
                            since,
                        },
                        run,
                    )
                    .await
                };
                (question, since, answer)
            }
        },
    );
    Effect::new(move |_| {
        let Some((question, since, answer)) = data.get() else {
            return;
        };
        match (settle(answer), since) {
            (Ok(delta), Some(since)) => lines.update(|l| match l {
                Some(Ok(l)) if l.question == question => l.merge(delta, since),
                _ => {}
            }),
            (Ok(all), None) => lines.set(Some(Ok(Lines::of(question, all)))),
            (Err(e), _) => lines.set(Some(Err(e))),
        }
    });
    let canvas = NodeRef::<html::Canvas>::new();
    let legend = NodeRef::<html::Ul>::new();
    let hover = RwSignal::new(None::<(f64, u64)>);
    let redraw = draw::redraw_signal();
    Effect::new(move |_| {
        redraw.track();
        let style = style.get();
        lines.with(|l| {
            if let (Some(Ok(l)), Some(c), Some(ul)) = (l, canvas.get(), legend.get()) {
                draw::chart(&c, &ul, l, style);
            }
        });
    });
    let on_move = move |ev: leptos::ev::MouseEvent| {
        let Some(c) = canvas.get_untracked() else {
            return;
        };
        let width = f64::from(c.client_width().max(1));
        let x = f64::from(ev.offset_x());
        lines.with_untracked(|l| {
            if let Some(Ok(l)) = l {
                let plot = (x - draw::LEFT).max(0.0) / (width - draw::LEFT).max(1.0);
                let t = l.from + ((l.to - l.from) as f64 * plot.min(1.0)) as u64;
                hover.set(Some((x, t)));
            }
        });
    };
    let tooltip = move || {
        let (x, t) = hover.get()?;
        lines.with(|l| {
            let Some(Ok(l)) = l else { return None };
            let rows = legend_names(&l.lines)
                .into_iter()
                .zip(l.at(t))
                .map(|(name, v)| {
                    let v = v.map_or_else(|| "–".to_owned(), |v| format_value("{value}", v));
                    view! { <div>{name} ": " <b>{v}</b></div> }
                })
                .collect_view();
            Some(view! {
                <div class="chart-tooltip" role="tooltip" style=format!("left: {x:.0}px")>
                    <div class="muted">{crate::format::clock(t * 1000)}</div>
                    {rows}
                </div>
            })
        })
    };
    let legend_items = move || {
        lines.with(|l| match l {
            Some(Ok(l)) if l.lines.is_empty() => {
                view! { <li class="muted">"No data yet"</li> }.into_any()
            }
            Some(Ok(l)) => l
                .lines
                .iter()
                .zip(legend_names(&l.lines))
                .enumerate()
                .map(|(i, (s, name))| {
                    let last = s.points.iter().rev().find_map(|p| p.1);
                    let last = last.map_or_else(String::new, |v| format_value(" {value}", v));
                    view! {
                        <li title=s.key.display()>
                            <span class=format!("swatch series-{}", i % COLOURS + 1) aria-hidden="true"></span>
                            {format!("{name} ({})", s.agg.name())}
                            <b>{last}</b>
                        </li>
                    }
                })
                .collect_view()
                .into_any(),
            Some(Err(e)) => view! { <li class="error" role="alert">{e.clone()}</li> }.into_any(),
            None => ().into_any(),
        })
    };
    view! {
        <figure class="chart-widget">
            <div class="chart-box">
                <canvas
                    node_ref=canvas
                    data-testid="chart-canvas"
                    role="img"
                    aria-label="Chart of the series in the legend below"
                    on:mousemove=on_move
                    on:mouseleave=move |_| hover.set(None)
                ></canvas>
                {tooltip}
            </div>
            <ul class="chart-legend" node_ref=legend data-testid="chart-legend">{legend_items}</ul>
        </figure>
    }
    .into_any()
}

#[cfg(feature = "hydrate")]
mod draw {
    //! Canvas drawing, in the browser only. Colours come from the page's CSS (the legend's
    //! swatches, the canvas's own text colour), so a theme switch or a custom palette
    //! changes the chart like everything else.

    use flowdeck_protocol::page::{format_value, ChartStyle};
    use leptos::prelude::*;
    use wasm_bindgen::JsCast;
    use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, HtmlUListElement};

    use super::{super::series, Lines};

    /// Room on the left for the axis labels, in CSS pixels.
    pub(super) const LEFT: f64 = 44.0;
    /// Room at the bottom for the time labels.
    const BOTTOM: f64 = 18.0;
    const TOP: f64 = 8.0;

    /// A signal that changes when the chart must be drawn again though its data did not:
    /// the theme changed or the window was resized.
    pub(super) fn redraw_signal() -> Signal<u64> {
        let resized = RwSignal::new(0u64);
        let handle =
            window_event_listener(leptos::ev::resize, move |_| resized.update(|n| *n += 1));
        on_cleanup(move || handle.remove());
        // Following the system, the scheme can change under the page: draw again then too.
        let scheme = RwSignal::new(0u64);
        if let Ok(Some(query)) = window().match_media("(prefers-color-scheme: dark)") {
            let on_change = wasm_bindgen::closure::Closure::<dyn FnMut()>::new(move || {
                scheme.update(|n| *n += 1)
            });
            query.set_onchange(Some(on_change.as_ref().unchecked_ref()));
            let on_change = send_wrapper::SendWrapper::new((query, on_change));
            on_cleanup(move || on_change.0.set_onchange(None));
        }
        let theme = crate::theme::use_theme();
        Signal::derive(move || {
            theme.track();
            scheme.track();
            resized.get()
        })
    }

    fn colour_of(el: &web_sys::Element, fallback: &str) -> String {
        window()
            .get_computed_style(el)
            .ok()
            .flatten()
            .and_then(|s| s.get_property_value("color").ok())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| fallback.to_owned())
    }

    pub(super) fn chart(
        canvas: &HtmlCanvasElement,
        legend: &HtmlUListElement,
        l: &Lines,
        style: ChartStyle,
    ) {
        let (w, h) = (
            f64::from(canvas.client_width().max(120)),
            f64::from(canvas.client_height().max(80)),
        );
        let dpr = window().device_pixel_ratio().max(1.0);
        canvas.set_width((w * dpr) as u32);
        canvas.set_height((h * dpr) as u32);
        let Some(ctx) = canvas
            .get_context("2d")
            .ok()
            .flatten()
            .and_then(|c| c.dyn_into::<CanvasRenderingContext2d>().ok())
        else {
            return;
        };
        let _ = ctx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);
        ctx.clear_rect(0.0, 0.0, w, h);
        let ink = colour_of(canvas, "#888");
        let swatches = legend.get_elements_by_class_name("swatch");
        let colours: Vec<String> = (0..l.lines.len())
            .map(|i| {
                swatches
                    .item(i as u32)
                    .map_or_else(|| ink.clone(), |el| colour_of(&el, &ink))
            })
            .collect();
        let plot_w = (w - LEFT - 4.0).max(10.0);
        let plot_h = h - TOP - BOTTOM;
        let columns: Vec<Vec<series::Column>> = l
            .lines
            .iter()
            .map(|s| series::decimate(&s.points, l.from, l.to, plot_w as usize))
            .collect();
        let top = columns.iter().flatten().map(|c| c.max).fold(0.0, f64::max);
        let max = series::nice_max(top);
        let y = |v: f64| TOP + plot_h - (v / max).clamp(0.0, 1.0) * plot_h;

        // Grid and labels.
        ctx.set_stroke_style_str(&ink);
        ctx.set_fill_style_str(&ink);
        ctx.set_global_alpha(0.25);
        ctx.set_line_width(1.0);
        for frac in [0.0, 0.5, 1.0] {
            ctx.begin_path();
            let gy = y(max * frac).round() + 0.5;
            ctx.move_to(LEFT, gy);
            ctx.line_to(LEFT + plot_w, gy);
            ctx.stroke();
        }
        ctx.set_global_alpha(1.0);
        ctx.set_font("11px system-ui, sans-serif");
        for frac in [0.0, 0.5, 1.0] {
            let _ = ctx.fill_text(
                &format_value("{value}", max * frac),
                2.0,
                y(max * frac) + 4.0,
            );
        }
        // Time along the bottom (UTC, like every time on the dashboard).
        let base = TOP + plot_h + 13.0;
        for (frac, align) in [(0.0, "left"), (0.5, "center"), (1.0, "right")] {
            let t = l.from as f64 + (l.to - l.from) as f64 * frac;
            ctx.set_text_align(align);
            let _ = ctx.fill_text(
                &crate::format::clock((t * 1000.0) as u64),
                LEFT + plot_w * frac,
                base,
            );
        }
        ctx.set_text_align("left");

        let n = columns.len().max(1) as f64;
        for (i, cols) in columns.iter().enumerate() {
            let colour = &colours[i];
            ctx.set_stroke_style_str(colour);
            ctx.set_fill_style_str(colour);
            match style {
                ChartStyle::Bar => {
                    // Bars per point, side by side per series, at least one pixel wide.
                    let points = l.lines[i].points.len().max(1) as f64;
                    let slot = (plot_w / points).max(1.0);
                    let bar = (slot / n).max(1.0);
                    for c in cols {
                        let x = LEFT + c.x as f64 + bar * i as f64 - slot / 2.0;
                        let top = y(c.max);
                        ctx.fill_rect(x.max(LEFT), top, bar.max(1.0), TOP + plot_h - top);
                    }
                }
                ChartStyle::Line | ChartStyle::Area => {
                    ctx.set_line_width(1.5);
                    ctx.begin_path();
                    let mut started = false;
                    for c in cols {
                        let x = LEFT + c.x as f64;
                        // One vertex for a column with one value; up to four otherwise.
                        let mut prev = None;
                        for v in [c.first, c.min, c.max, c.last] {
                            if prev == Some(v) {
                                continue;
                            }
                            prev = Some(v);
                            if started {
                                ctx.line_to(x, y(v));
                            } else {
                                ctx.move_to(x, y(v));
                                started = true;
                            }
                        }
                    }
                    ctx.stroke();
                    // A line of one column has no length: show it as a dot.
                    if let [c] = cols.as_slice() {
                        ctx.fill_rect(LEFT + c.x as f64 - 1.5, y(c.last) - 1.5, 3.0, 3.0);
                    }
                    if style == ChartStyle::Area {
                        if let (Some(first), Some(last)) = (cols.first(), cols.last()) {
                            ctx.line_to(LEFT + last.x as f64, TOP + plot_h);
                            ctx.line_to(LEFT + first.x as f64, TOP + plot_h);
                            ctx.close_path();
                            ctx.set_global_alpha(0.18);
                            ctx.fill();
                            ctx.set_global_alpha(1.0);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(not(feature = "hydrate"))]
mod draw {
    //! The server renders an empty canvas; drawing happens in the browser.

    use flowdeck_protocol::page::ChartStyle;
    use leptos::prelude::*;

    use super::Lines;

    pub(super) const LEFT: f64 = 44.0;

    pub(super) fn redraw_signal() -> Signal<u64> {
        Signal::stored(0)
    }

    pub(super) fn chart(
        _canvas: &web_sys::HtmlCanvasElement,
        _legend: &web_sys::HtmlUListElement,
        _l: &Lines,
        _style: ChartStyle,
    ) {
    }
}

#[cfg(test)]
mod tests {
    use flowdeck_protocol::metrics::{Kind, SeriesKey};

    use super::*;

    fn line(label: &str, points: &[(u64, f64)]) -> SeriesData {
        SeriesData {
            key: SeriesKey::new("q", &[("stage", label)]),
            kind: Kind::Gauge,
            agg: Agg::Last,
            step: 1,
            points: points.iter().map(|&(t, v)| (t, Some(v))).collect(),
        }
    }

    #[test]
    fn deltas_join_the_lines_and_old_points_fall_out_of_range() {
        let question: Question = (vec!["q".parse().unwrap()], None, 3);
        let mut l = Lines::of(
            question,
            vec![line("a", &[(10, 1.0), (11, 2.0), (12, 0.5)])],
        );
        assert_eq!((l.from, l.to, l.since()), (10, 13, Some(12)));
        // The partial window at 12 is read again, and a new series turns up.
        l.merge(
            vec![line("a", &[(12, 3.0), (13, 4.0)]), line("b", &[(13, 9.0)])],
            12,
        );
        assert_eq!((l.from, l.to), (11, 14));
        assert_eq!(
            l.lines[0].points,
            vec![(11, Some(2.0)), (12, Some(3.0)), (13, Some(4.0))]
        );
        assert_eq!(l.lines.len(), 2);
        assert_eq!(l.at(13), vec![Some(4.0), Some(9.0)]);
        // Within reach of the nearest value, or nothing.
        assert_eq!(l.at(14), vec![Some(4.0), Some(9.0)]);
        assert_eq!(l.at(30), vec![None, None]);
    }
}
