//! The reducer Lambda. Its handler arrives with the orchestration of runs; until then the crate
//! only builds, so that the workspace and the deployment layout are complete.
