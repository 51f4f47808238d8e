import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY_MODULES = (
    "azure.ai.ml",
    "azure.keyvault.secrets",
    "azure.mgmt.authorization",
    "azure.monitor.opentelemetry",
)


def test_importing_function_app_loads_no_heavy_sdk():
    # A fresh interpreter, as on a cold start: importing the entry point must stay light.
    script = (
        f"import json, sys; import function_app; print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True)

    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_health_is_an_anonymous_get_route():
    import function_app

    functions = {function.get_function_name(): function for function in function_app.app.get_functions()}
    trigger = functions["health"].get_trigger()

    assert trigger.route == "health"
    assert [method.value for method in trigger.methods] == ["GET"]
    assert trigger.auth_level.value == "anonymous"
