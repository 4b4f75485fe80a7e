//! The web dashboard on the admin listener: the overview page (`GET /`: clusters, buckets,
//! backends and their actions, creating and deleting clusters, the routes panel), the live page (`GET /live`: uPlot charts fed by the event
//! stream), the login form for the admin token (which starts a signed session, see
//! [`super::session`]), and the embedded static files.
//!
//! Control plane. Pages are rendered by askama from `templates/` (which escapes everything that
//! comes from configuration or state); the scripts in `static/` refresh them from the JSON API
//! and change state only through it, so the dashboard has no powers of its own.

pub mod assets;
pub mod routes_view;
pub mod view;

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::auth::constant_time_eq;
use super::session::{self, SESSION_COOKIE};
use super::AdminState;
use crate::cluster::director_actor::GetRoutes;
use routes_view::RouteView;
use view::{cluster_sample, is_direct_route, ClusterView, StatusView};

type Data = web::Data<AdminState>;

/// Registers the dashboard routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(overview))
        .route("/live", web::get().to(live))
        .route("/login", web::get().to(login_form))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/static/{path:.*}", web::get().to(assets::serve));
}

/// What every page's frame (`templates/base.html`) needs.
pub struct Layout {
    /// `overview`, `live` or `login`: marks the current navigation link.
    pub page: &'static str,
    /// A token is configured, so there is a session to end.
    pub can_log_out: bool,
}

impl Layout {
    /// The versioned URL of an embedded static file.
    pub fn asset(&self, path: &str) -> String {
        assets::url(path)
    }
}

/// `GET /`.
#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    pub layout: Layout,
    pub status: StatusView,
    pub clusters: Vec<ClusterView>,
    /// The implicit clusters of "road warrior" routes.
    pub direct_routes: Vec<ClusterView>,
    /// The route list in match order.
    pub routes: Vec<RouteView>,
}

/// `GET /live`.
#[derive(Template)]
#[template(path = "live.html")]
pub struct LivePage {
    pub layout: Layout,
}

/// `GET /login`, and `POST /login` with a wrong token.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub layout: Layout,
    pub error: Option<&'static str>,
}

async fn overview(data: Data) -> HttpResponse {
    let states = data.cluster_states().await;
    let sample = data.live.latest();
    let now = unix_now();
    let (mut clusters, mut direct_routes) = (Vec::new(), Vec::new());
    for state in &states {
        let view = ClusterView::new(state, cluster_sample(sample.as_deref(), &state.name), now);
        if is_direct_route(&state.name) {
            direct_routes.push(view);
        } else {
            clusters.push(view);
        }
    }
    let routes = data.director.send(GetRoutes).await.unwrap_or_default();
    let page = OverviewPage {
        layout: layout(&data, "overview"),
        status: StatusView::new(&data.status.load(), data.started.elapsed(), now)
            .with_replication(data.replication.as_ref().map(|r| r.status.load_full()).as_deref()),
        clusters,
        direct_routes,
        routes: RouteView::list(&routes),
    };
    html(StatusCode::OK, &page)
}

async fn live(data: Data) -> HttpResponse {
    html(
        StatusCode::OK,
        &LivePage {
            layout: layout(&data, "live"),
        },
    )
}

fn layout(data: &AdminState, page: &'static str) -> Layout {
    Layout {
        page,
        can_log_out: data.token().is_some(),
    }
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    token: String,
}

/// `GET /login`: the form; straight to the overview when no token is needed or the session
/// is already valid.
async fn login_form(data: Data, req: HttpRequest) -> HttpResponse {
    let Some(settings) = data.settings() else {
        return see_other("/");
    };
    let Some(token) = &settings.token else {
        return see_other("/");
    };
    let session_valid = req
        .cookie(SESSION_COOKIE)
        .is_some_and(|c| session::is_valid(token, c.value(), settings.session_ttl));
    if session_valid {
        return see_other("/");
    }
    login_page(StatusCode::OK, None)
}

/// `POST /login` (`application/x-www-form-urlencoded`, field `token`): a session cookie (see
/// [`session`]; it never holds the token) and a redirect to the overview, or the form again
/// with 401.
async fn login(
    data: Data,
    req: HttpRequest,
    form: Result<web::Form<LoginForm>, actix_web::Error>,
) -> HttpResponse {
    let Some(settings) = data.settings() else {
        return see_other("/");
    };
    let Some(token) = &settings.token else {
        return see_other("/");
    };
    let Ok(form) = form else {
        return login_page(StatusCode::BAD_REQUEST, Some("Enter the admin token."));
    };
    let given = form.token.trim();
    if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
        return login_page(StatusCode::UNAUTHORIZED, Some("That token is not valid."));
    }
    let value = match session::new_session(token, settings.session_ttl) {
        Ok(value) => value,
        Err(e) => {
            log::error!("dashboard: cannot start a session: {e}");
            return login_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some("A session could not be started; use the API with a Bearer header."),
            );
        }
    };
    HttpResponse::SeeOther()
        .cookie(session::cookie(value, settings.session_ttl, came_over_tls(&req)))
        .insert_header((header::LOCATION, "/"))
        .finish()
}

/// `POST /logout`: forgets the session cookie.
async fn logout(req: HttpRequest) -> HttpResponse {
    HttpResponse::SeeOther()
        .cookie(session::removal_cookie(came_over_tls(&req)))
        .insert_header((header::LOCATION, "/login"))
        .finish()
}

/// Whether the request reached the admin listener over TLS, so that the session cookie is
/// marked `Secure`. There is no TLS admin listener yet; this follows it when there is.
fn came_over_tls(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

fn login_page(status: StatusCode, error: Option<&'static str>) -> HttpResponse {
    let page = LoginPage {
        layout: Layout {
            page: "login",
            can_log_out: false,
        },
        error,
    };
    html(status, &page)
}

fn see_other(location: &'static str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// Scripts and styles only from this origin (none inline), no framing (the pages have buttons
/// that change state), forms only to this origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// A rendered page with the security headers; a template error is a 500 (and a bug).
fn html(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type(ContentType::html())
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
            .insert_header((header::X_FRAME_OPTIONS, "DENY"))
            .insert_header((header::REFERRER_POLICY, "same-origin"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body(body),
        Err(e) => {
            log::error!("dashboard: cannot render a page: {e}");
            HttpResponse::InternalServerError()
                .content_type(ContentType::plaintext())
                .body("the page could not be rendered\n")
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests;
