//! What every service's OpenAPI document shares: the `bearer` JWT scheme, the [`Problem`] schema
//! and the problem+json answers most routes can give. A service derives its document with
//! `#[openapi(modifiers(&platform::openapi::Shared))]` and refers to the answers from its
//! `#[utoipa::path]`s as `(status = 401, response = Unauthenticated)`; the header parameters of
//! the shared extractors (`MaybeKey`, `PreferWait`) and the list query (`PageQuery`) document
//! themselves next to their code.

use crate::{Problem, problem::PROBLEM_JSON};
use utoipa::{
    Modify, PartialSchema, ToResponse, ToSchema,
    openapi::{
        Content, OpenApi, Ref, RefOr, Response, ResponseBuilder,
        path::{Parameter, ParameterBuilder, ParameterIn},
        schema::Schema,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

/// One Server-Sent Event as a `text/event-stream` answer carries it (`body = ServerSentEvent,
/// content_type = "text/event-stream"`): its name, and its data, a JSON document whose schema
/// the route's description names.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only: the streams write their events with axum")]
pub struct ServerSentEvent {
    /// The event's name (such as `token`, `seats`, `reservation`).
    pub event: String,
    /// The event's data: one JSON document, as the route says.
    pub data: String,
}

/// The security scheme of routes that need a JWT: `security(("bearer" = []))`.
pub const BEARER: &str = "bearer";

/// Adds the `bearer` scheme, the `Problem` schema and the shared problem responses.
pub struct Shared;

impl Modify for Shared {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("`Authorization: Bearer <JWT>` (HS256; claims `sub`, `role`, `exp`)"))
                    .build(),
            ),
        );
        components.schemas.entry(Problem::name().into_owned()).or_insert_with(Problem::schema);
        for (name, response) in shared_responses() {
            components.responses.entry(name.to_owned()).or_insert(response);
        }
    }
}

/// An `application/problem+json` answer whose body is a [`Problem`].
pub fn problem_response(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, Content::new(Some(Ref::from_schema_name(Problem::name()))))
        .build()
        .into()
}

/// A header parameter (for extractors that read one).
pub fn header_parameter(
    name: &str,
    required: bool,
    description: &str,
    schema: impl Into<RefOr<Schema>>,
) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(if required { utoipa::openapi::Required::True } else { utoipa::openapi::Required::False })
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

macro_rules! problem_responses {
    ($($(#[$doc:meta])* $name:ident: $description:literal,)*) => {
        $(
            $(#[$doc])*
            pub struct $name;

            impl<'s> ToResponse<'s> for $name {
                fn response() -> (&'s str, RefOr<Response>) {
                    (stringify!($name), problem_response($description))
                }
            }
        )*

        fn shared_responses() -> Vec<(&'static str, RefOr<Response>)> {
            vec![$(<$name as ToResponse>::response()),*]
        }
    };
}

problem_responses! {
    /// 400.
    BadRequest: "The request is malformed or fails validation \
        (`VALIDATION_FAILED`, `MALFORMED_JSON`, `INVALID_PATH`).",
    /// 401.
    Unauthenticated: "No bearer token, or one that is invalid or expired \
        (`UNAUTHENTICATED`, `INVALID_TOKEN`).",
    /// 403.
    Forbidden: "The caller's role may not do this (`FORBIDDEN`).",
    /// 404.
    NotFound: "The resource does not exist, or is not the caller's to see (`NOT_FOUND`).",
    /// 401 on a booking route (the bearer token, or the waiting-room token of `queue_guard`).
    BookingUnauthenticated: "No or a bad bearer token, or no known `X-Queue-Token` \
        (`UNAUTHENTICATED`, `INVALID_TOKEN`, `QUEUE_TOKEN_REQUIRED`, `QUEUE_TOKEN_UNKNOWN`).",
    /// 403 on a booking route: the waiting room has not admitted this token for this caller.
    QueueNotAdmitted: "The queue token is still waiting (`QUEUE_NOT_ADMITTED`), expired \
        (`QUEUE_TOKEN_EXPIRED`) or another user's (`QUEUE_TOKEN_FOREIGN`).",
    /// 421: the schedule is kept by a partition this replica does not keep ([`crate::partition`]).
    Misdirected: "The schedule (or the reservation's schedule) is kept by another partition than \
        this replica's; the detail names it (`MISDIRECTED_REQUEST`). Only where replicas keep \
        some partitions (`TICKETING_PARTITIONS`).",
    /// 415.
    UnsupportedMediaType: "The body was not sent as `application/json` (`UNSUPPORTED_MEDIA_TYPE`).",
    /// 500.
    Internal: "Something failed on our side; the detail quotes a reference to report (`INTERNAL`).",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_adds_the_scheme_the_problem_schema_and_the_responses() {
        let mut doc = OpenApi::default();
        Shared.modify(&mut doc);
        let json = serde_json::to_value(&doc).unwrap();
        let components = &json["components"];
        assert_eq!(components["securitySchemes"][BEARER]["scheme"], "bearer");
        assert_eq!(components["schemas"]["Problem"]["properties"]["type"]["type"], "string");
        assert_eq!(
            components["responses"]["Unauthenticated"]["content"][PROBLEM_JSON]["schema"]["$ref"],
            "#/components/schemas/Problem"
        );
    }
}
