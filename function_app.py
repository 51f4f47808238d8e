"""The Functions entry point: one FunctionApp wiring the blueprints in handlers/; no logic lives here."""

import azure.functions as func

from handlers.health import blueprint as health_blueprint

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(health_blueprint)
