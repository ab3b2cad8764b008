//! The freeze pipeline: exec-tar, build, push, pack, in order, reported as one stream of
//! [`FreezeEvent`]s. Nothing here knows of any user interface.

pub mod build;
pub mod capture;
pub mod command;
pub mod docker_load;
pub mod events;
pub mod exec_tar;
pub mod image_archive;
pub mod pack;
pub mod probes;
pub mod push;
pub mod remote;
pub mod report;
mod runner;
pub mod stream_copy;
pub mod stream_push;
pub mod tar_scan;

pub use events::*;
pub use report::EventTx;
pub use runner::*;
