"""`manage.py createclient NAME --scope "users:read tokens:introspect" [--json]`: a new service client.

Prints the client's id, its secret and its scope. The secret is shown this once: only
its digest is stored. With --json the output is exactly one line,
`{"client_id": ..., "client_secret": ..., "scope": ...}`, for scripts.
"""

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.scopes import SCOPES
from accounts.services import client_create


class Command(BaseCommand):
    help = "Create a service client (OAuth 2.0 client credentials) and print its id and its secret, once."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Who calls with this client (for people reading the admin).")
        parser.add_argument(
            "--scope",
            required=True,
            help=f"Space-separated scopes the client may hold: any of {', '.join(SCOPES)}.",
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON line for scripts.")

    def handle(self, *args, name, scope, **options):
        try:
            client, secret = client_create(name=name, scopes=scope, via="by manage.py createclient")
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        if options["json"]:
            self.stdout.write(
                _one_line({"client_id": client.client_id, "client_secret": secret, "scope": client.scopes})
            )
            return
        self.stdout.write(
            f"Created service client {client.name!r}.\n"
            f"client_id:     {client.client_id}\n"
            f"client_secret: {secret}\n"
            f"scope:         {client.scopes}\n"
            "Store the secret now: it is not shown again (rotate it in the admin if it is lost)."
        )


def _one_line(data: dict) -> str:
    return json.dumps(data, separators=(", ", ": "))
