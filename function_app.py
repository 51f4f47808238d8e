"""The Functions entry point: one FunctionApp wiring the blueprints in handlers/; no logic lives here."""

import azure.functions as func

from handlers.approvals import blueprint as approvals_blueprint
from handlers.asyncapi import blueprint as asyncapi_blueprint
from handlers.deployments import blueprint as deployments_blueprint
from handlers.docs import blueprint as docs_blueprint
from handlers.health import blueprint as health_blueprint
from handlers.hygiene import blueprint as hygiene_blueprint
from handlers.intake import blueprint as intake_blueprint
from handlers.lifecycle import blueprint as lifecycle_blueprint
from handlers.models import blueprint as models_blueprint
from handlers.openapi import blueprint as openapi_blueprint
from handlers.runs import blueprint as runs_blueprint
from handlers.watchdog import blueprint as watchdog_blueprint
from handlers.what_if import blueprint as what_if_blueprint
from handlers.worker import blueprint as worker_blueprint

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(health_blueprint)
app.register_functions(deployments_blueprint)
app.register_functions(what_if_blueprint)
app.register_functions(runs_blueprint)
app.register_functions(approvals_blueprint)
app.register_functions(models_blueprint)
app.register_functions(openapi_blueprint)
app.register_functions(asyncapi_blueprint)
app.register_functions(docs_blueprint)
app.register_functions(intake_blueprint)
app.register_functions(worker_blueprint)
app.register_functions(lifecycle_blueprint)
app.register_functions(hygiene_blueprint)
app.register_functions(watchdog_blueprint)
