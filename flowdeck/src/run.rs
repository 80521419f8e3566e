//! A batch run with the dashboard open for its length: PlanAI's
//! `graph.run(tasks, run_dashboard=True)`, in one line.

use std::future::Future;

use flowdeck_runtime::{Pipeline, Report};
use flowdeck_server::{
    dashboard::{Dashboard, DashboardError},
    Config,
};

/// Runs a pipeline to completion with its dashboard open meanwhile, printing the URL.
pub trait RunWithDashboard<In, Out> {
    /// Like [`Pipeline::run`], with the default dashboard at http://127.0.0.1:3000 (or a
    /// free port, when 3000 is taken) from the first item to the last. The dashboard stops
    /// when the run ends.
    fn run_with_dashboard<I>(
        self,
        items: I,
    ) -> impl Future<Output = Result<Report<Out>, DashboardError>> + Send
    where
        I: IntoIterator<Item = In> + Send,
        I::IntoIter: Send;

    /// The same with a dashboard of your own (pages, theme, address, sign-in).
    fn run_with<I>(
        self,
        dashboard: Dashboard,
        items: I,
    ) -> impl Future<Output = Result<Report<Out>, DashboardError>> + Send
    where
        I: IntoIterator<Item = In> + Send,
        I::IntoIter: Send;
}

impl<In: Send + 'static, Out: Send + 'static> RunWithDashboard<In, Out> for Pipeline<In, Out> {
    fn run_with_dashboard<I>(
        self,
        items: I,
    ) -> impl Future<Output = Result<Report<Out>, DashboardError>> + Send
    where
        I: IntoIterator<Item = In> + Send,
        I::IntoIter: Send,
    {
        self.run_with(Dashboard::new(Config::default()), items)
    }

    async fn run_with<I>(
        self,
        dashboard: Dashboard,
        items: I,
    ) -> Result<Report<Out>, DashboardError>
    where
        I: IntoIterator<Item = In> + Send,
        I::IntoIter: Send,
    {
        let running = self.start();
        let handle = running.handle.clone();
        let serving = match dashboard.start_or_any_port(handle.clone()).await {
            Ok(s) => s,
            Err(e) => {
                handle.abort();
                return Err(e);
            }
        };
        let report = running.run(items).await;
        // The run is over; the dashboard goes with it.
        let _ = serving.stop().await;
        Ok(report)
    }
}
