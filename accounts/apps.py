from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        # Registers the system checks that warn about unsafe configuration, and connects
        # the session cache's invalidation of saved accounts.
        from accounts import checks, session_cache  # noqa: F401
