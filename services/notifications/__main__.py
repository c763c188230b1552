from services.notifications.app import create_app
from services.notifications.settings import NotificationsSettings
from shared.runner import serve

serve("notifications", NotificationsSettings, create_app)
