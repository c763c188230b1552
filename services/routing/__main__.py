from services.routing.app import create_app
from services.routing.settings import RoutingSettings
from shared.runner import serve

serve("routing", RoutingSettings, create_app)
