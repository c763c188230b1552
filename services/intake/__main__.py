from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.runner import serve

serve("intake", IntakeSettings, create_app)
