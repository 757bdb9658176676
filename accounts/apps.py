from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        # Registers the system checks that warn about unsafe configuration.
        from accounts import checks  # noqa: F401
