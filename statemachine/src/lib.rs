//! Local execution of the csvlake state machine definition. The executor arrives with the
//! orchestration of runs; until then `csvlake run` drives the converter over simple batches.
