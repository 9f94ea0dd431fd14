"""alertcap: alert-triggered packet capture for Azure VMs.

Composition only: the app and its blueprints (HTTP starters, the orchestrator, the
activities). The same file runs in Azure and on the local host (localdev/host).
"""

import azure.durable_functions as df
import azure.functions as func

from activities.functions import bp as activities
from orchestrators.functions import bp as orchestrators
from starters.doctor import bp as doctor
from starters.http import bp as starters
from starters.orphans import bp as orphans
from starters.runs import bp as run_page
from starters.standby import bp as standby

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(starters)
app.register_functions(orchestrators)
app.register_functions(activities)
app.register_functions(doctor)
app.register_functions(standby)
app.register_functions(run_page)
app.register_functions(orphans)
