from services.analytics.app import create_app
from services.analytics.settings import AnalyticsSettings
from shared.runner import serve

serve("analytics", AnalyticsSettings, create_app)
