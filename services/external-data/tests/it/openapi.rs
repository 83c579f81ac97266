//! The document and the routes have one source each; this fails when they drift apart.

use testkit::TestEnv;

#[tokio::test]
async fn every_documented_operation_is_routed_and_the_document_is_served() {
    let env = TestEnv::new().await.unwrap();
    let url = env.spawn_app(external_data::start(&env.runtime()).unwrap()).await.unwrap();
    let drift =
        testkit::openapi_drift(&url, "/openapi/external-data.json", &external_data::openapi()).await.unwrap();
    assert!(drift.is_empty(), "{drift:#?}");
}
