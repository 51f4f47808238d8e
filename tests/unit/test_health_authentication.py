"""Health says whether callers' identities can be trusted: in Azure without Easy Auth it is degraded, saying why."""

from handlers.principal import header_trust
from shared.health import AuthenticationHealth, check_health


def _authentication(environ: dict[str, str]) -> AuthenticationHealth:
    trust = header_trust(environ)
    return AuthenticationHealth(trust.trusted, trust.easy_auth, trust.in_azure, trust.detail)


def test_without_an_authentication_section_the_report_is_as_before():
    assert "authentication" not in check_health({"storage": lambda: None}).as_dict()


def test_trusted_headers_keep_the_report_healthy():
    report = check_health({"storage": lambda: None}, authentication=_authentication({"WEBSITE_AUTH_ENABLED": "True"}))

    assert report.healthy
    assert report.as_dict()["authentication"] == {
        "status": "ok",
        "easyAuth": "enabled",
        "inAzure": False,
        "detail": "Easy Auth (the local host's) sets the principal headers.",
    }


def test_in_azure_without_easy_auth_the_report_is_degraded_with_the_reason():
    authentication = _authentication({"WEBSITE_INSTANCE_ID": "0a1b", "WEBSITE_SITE_NAME": "func-broker"})

    report = check_health({"storage": lambda: None}, authentication=authentication)

    body = report.as_dict()
    assert not report.healthy
    assert body["status"] == "degraded"
    assert body["dependencies"]["storage"]["status"] == "ok"
    assert body["authentication"]["status"] == "misconfigured"
    assert body["authentication"]["easyAuth"] == "disabled"
    assert body["authentication"]["inAzure"] is True
    assert "WEBSITE_AUTH_ENABLED" in body["authentication"]["detail"]
