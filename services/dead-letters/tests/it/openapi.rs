//! The document and the routes have one source each; this fails when they drift apart.

#[tokio::test]
async fn every_documented_operation_is_routed_and_the_document_is_served() {
    let drift = testkit::openapi_drift_of::<dead_letters::DeadLetters>().await.unwrap();
    assert!(drift.is_empty(), "{drift:#?}");
}
