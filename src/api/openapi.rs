//! The OpenAPI 3.1 document served at [`OPENAPI_PATH`](super::OPENAPI_PATH).
//!
//! Built from the same [`endpoint::each`] list, parameter declarations and response types
//! the handlers use; only the three plain routes are described by hand here.

use utoipa::OpenApi;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, PathItem, PathsBuilder,
};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required};

use super::endpoint::{self, Endpoint, Schemas, Visit};
use super::error::{ErrorBody, ErrorEnvelope};
use super::params::{Kind, Param};
use super::{HEALTHZ_PATH, METRICS_PATH, Meta, OPENAPI_PATH, auth};

const BEARER: &str = "api_key";
const SESSION: &str = "session";
const AGGREGATE_TAG: &str = "aggregate";
const OPS_TAG: &str = "operations";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "goatview",
        description = "Aggregate analytics answered from incrementally maintained state. Every \
            aggregate answer is `{data, error: null, meta}`; every failure is \
            `{data: null, error: {code, message}, meta: {}}`. Errors: 401 comes before 400, \
            400 before 404. Unknown query parameters are ignored; a known one given twice or \
            empty is a 400."
    ),
    components(schemas(Meta, ErrorEnvelope, ErrorBody)),
    tags(
        (name = "aggregate", description = "Project-level aggregate analytics (GET only)."),
        (name = "operations", description = "Health, metrics and this document.")
    )
)]
struct ApiDoc;

/// The document, as pretty JSON.
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    let mut ops = Operations { paths: PathsBuilder::new(), schemas: Vec::new() };
    endpoint::each(&mut ops);

    let plain = |summary: &str, response: Response| -> PathItem {
        let op = OperationBuilder::new().tag(OPS_TAG).summary(Some(summary)).response("200", response).build();
        PathItem::new(HttpMethod::Get, op)
    };
    let json = |description: &str, schema: RefOr<Schema>| {
        ResponseBuilder::new()
            .description(description)
            .content("application/json", ContentBuilder::new().schema(Some(schema)).build())
            .build()
    };
    let health = ObjectBuilder::new()
        .property("status", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["ok"])))
        .required("status");
    let metrics = ResponseBuilder::new()
        .description("Prometheus text format 0.0.4.")
        .content(
            "text/plain",
            ContentBuilder::new().schema(Some(ObjectBuilder::new().schema_type(Type::String))).build(),
        )
        .build();
    let paths = ops
        .paths
        .path(HEALTHZ_PATH, plain("Liveness probe.", json("The server is up.", health.into())))
        .path(METRICS_PATH, plain("Request and ingestion metrics.", metrics))
        .path(OPENAPI_PATH, plain("This document.", json("OpenAPI 3.1 document.", ObjectBuilder::new().into())));
    doc.paths = paths.build();

    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.extend(ops.schemas);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An API key; the caller's org is the key's org."))
                .build(),
        ),
    );
    components.add_security_scheme(
        SESSION,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            auth::SESSION_COOKIE,
            "An HS256 JWT with `exp` and `org_ids`; ignored when a bearer key is sent.",
        ))),
    );
    // Serializing plain data structures cannot fail.
    doc.to_pretty_json().unwrap_or_default()
}

/// Builds each endpoint's operation.
struct Operations {
    paths: PathsBuilder,
    schemas: Schemas,
}

impl Visit for Operations {
    fn visit<E: Endpoint>(&mut self) {
        let data = E::data_schema(&mut self.schemas);
        self.paths = std::mem::take(&mut self.paths)
            .path(endpoint::path::<E>(), PathItem::new(HttpMethod::Get, operation::<E>(data)));
    }
}

fn operation<E: Endpoint>(data: RefOr<Schema>) -> Operation {
    let envelope = ObjectBuilder::new()
        .property("data", data)
        .property("error", ObjectBuilder::new().schema_type(Type::Null))
        .property("meta", Ref::from_schema_name("Meta"))
        .required("data")
        .required("error")
        .required("meta");
    let success = ResponseBuilder::new()
        .description("The answer.")
        .content("application/json", ContentBuilder::new().schema(Some(envelope)).build())
        .build();
    let no_scopes: [&str; 0] = [];
    OperationBuilder::new()
        .tag(AGGREGATE_TAG)
        .operation_id(Some(E::NAME.replace('-', "_")))
        .summary(Some(E::SUMMARY))
        .description(Some(E::DESCRIPTION))
        .parameters(Some(E::PARAMS.iter().map(parameter)))
        .securities(Some([SecurityRequirement::new(BEARER, no_scopes), SecurityRequirement::new(SESSION, no_scopes)]))
        .response("200", success)
        .response("400", failure("`invalid_parameter`: a parameter is missing, malformed or out of range."))
        .response("401", failure("`unauthorized`: no credentials, an unknown/expired/revoked key, or a bad session."))
        .response("404", failure("`not_found`: the project does not exist, is deleted or belongs to another org."))
        .response("500", failure("`internal`: a bug; the message reveals nothing."))
        .build()
}

fn failure(description: &str) -> Response {
    let schema = Ref::from_schema_name("ErrorEnvelope");
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(schema)).build())
        .build()
}

fn parameter(p: &Param) -> Parameter {
    let string = ObjectBuilder::new().schema_type(Type::String);
    let schema = match &p.kind {
        Kind::Id => string.format(Some(SchemaFormat::Custom("uuid".into()))),
        Kind::Date => {
            string.format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))).pattern(Some(r"^\d{4}-\d{2}-\d{2}$"))
        }
        Kind::Tz => string.examples(["Europe/Berlin"]),
        Kind::Int { min, max, default } => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(*min))
            .maximum(*max)
            .default(Some((*default).into())),
        Kind::Positive { max, default } => ObjectBuilder::new()
            .schema_type(Type::Number)
            .exclusive_minimum(Some(0))
            .maximum(Some(*max))
            .default(Some((*default).into())),
        Kind::Choice { values, default } => {
            string.enum_values(Some(values.iter().copied())).default(Some((*default).into()))
        }
    };
    ParameterBuilder::new()
        .name(p.name)
        .parameter_in(ParameterIn::Query)
        .required(if p.required { Required::True } else { Required::False })
        .description(Some(p.doc))
        .schema(Some(schema))
        .build()
}
