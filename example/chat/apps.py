from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "bayou demo: chat, ticker, echo"
    default_auto_field = "django.db.models.BigAutoField"
