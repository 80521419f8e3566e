//! One module per page.

mod not_found;
mod overview;

pub(crate) use not_found::NotFound;
pub(crate) use overview::Overview;
