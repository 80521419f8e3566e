//! flowdeck's user interface: one Leptos app rendered on the server and hydrated in the
//! browser. Pages read the [`live`] store, which one EventSource per tab keeps current,
//! and ask the server for the rest through the server functions of [`fetch`], which the
//! server answers through its [`Backend`].

mod backend;
mod badges;
mod control;
pub mod fetch;
mod format;
pub mod live;
mod pages;
#[cfg(feature = "hydrate")]
mod probe;
pub mod scope;
mod shell;
pub mod theme;
mod widgets;

pub use backend::{Backend, BackendRef, BoxFuture, Viewer};
pub use shell::{shell, App, SiteAssets, PAGES};
