//! Property: whatever fails, retries, fans out or gets filtered, the counts add up.

use std::time::Duration;

use flowdeck_runtime::{Graph, RetryPolicy, Stage};
use proptest::prelude::*;

/// What the test's tasks do with an item, chosen per item by the generated plan.
#[derive(Clone, Debug)]
struct Plan {
    /// How many children the first stage makes (0 filters the item out).
    fan: u8,
    /// Fails at the second stage on every attempt.
    fails: bool,
    /// Fails at the second stage on the first attempt only.
    flaky: bool,
    /// Goes to the short branch.
    short: bool,
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        0u8..4,
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
        any::<bool>(),
    )
        .prop_map(|(fan, fails, flaky, short)| Plan {
            fan,
            fails,
            flaky,
            short,
        })
}

fn run(plans: Vec<Plan>, workers: usize) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut g = Graph::<Plan, u32>::new("prop");
        let fan = g.add(
            Stage::flat_map("fan", |p: Plan, _cx| async move {
                Ok::<_, String>(vec![p.clone(); usize::from(p.fan)])
            })
            .workers(workers),
        );
        let check = g.add(
            Stage::map("check", |p: Plan, cx: flowdeck_runtime::Ctx| async move {
                if p.fails || (p.flaky && cx.attempt() == 1) {
                    Err("planned failure".to_string())
                } else {
                    Ok(p)
                }
            })
            .workers(workers)
            .retry(RetryPolicy::attempts(2).backoff(Duration::ZERO, Duration::ZERO)),
        );
        let short = g.add(Stage::map("short", |_p: Plan, _cx| async move {
            Ok::<_, String>(1u32)
        }));
        let long = g.add(
            Stage::map("long", |_p: Plan, _cx| async move { Ok::<_, String>(2u32) })
                .workers(workers),
        );
        g.input(fan);
        g.connect(fan, check);
        g.connect_if(check, short, |p| p.short);
        g.connect(check, long);
        g.output(short);
        g.output(long);
        let expect_children: u64 = plans.iter().map(|p| u64::from(p.fan)).sum();
        let expect_failed: u64 = plans
            .iter()
            .filter(|p| p.fails)
            .map(|p| u64::from(p.fan))
            .sum();
        let expect_retried: u64 = plans
            .iter()
            .filter(|p| p.fails || p.flaky)
            .map(|p| u64::from(p.fan))
            .sum();
        let n = plans.len() as u64;
        let report = g
            .build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .run(plans)
            .await;
        let s = &report.summary.stats;
        prop_assert_eq!(s.submitted, n + expect_children);
        prop_assert_eq!(
            s.queued + s.running + s.retrying + s.completed + s.failed + s.cancelled,
            s.submitted,
            "statuses add up to the items submitted: {:?}",
            s
        );
        prop_assert_eq!(
            s.queued + s.running + s.retrying,
            0,
            "nothing left in flight"
        );
        prop_assert_eq!(s.failed, expect_failed);
        // Parents complete when they fan out; children complete unless they failed.
        prop_assert_eq!(s.completed, n + expect_children - expect_failed);
        prop_assert_eq!(report.outputs.len() as u64, expect_children - expect_failed);
        let snap = &report.summary.snapshot;
        prop_assert_eq!(snap.stages[1].retried, expect_retried);
        prop_assert_eq!(snap.stages[1].failed, expect_failed);
        prop_assert_eq!(
            snap.stages[2].completed + snap.stages[3].completed,
            expect_children - expect_failed
        );
        prop_assert_eq!(snap.totals.completed, s.completed);
        prop_assert_eq!(report.summary.errors.total, expect_failed);
        let by_stage: u64 = report.summary.errors.by_stage.iter().sum();
        prop_assert_eq!(by_stage, expect_failed);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn counts_always_add_up(plans in prop::collection::vec(plan(), 0..120), workers in 1usize..4) {
        run(plans, workers)?;
    }
}
