"""`manage.py disableclient CLIENT_ID`: the client gets no new token and its tokens are refused."""

from django.core.management.base import BaseCommand, CommandError

from accounts.services import client_disable
from accounts.services.clients import client_get


class Command(BaseCommand):
    help = "Disable a service client: it gets no token, and the tokens it holds are refused from now on."

    def add_arguments(self, parser):
        parser.add_argument("client_id", help="The client's client_id (svc_...).")

    def handle(self, *args, client_id, **options):
        client = client_get(client_id=client_id)
        if client is None:
            raise CommandError(f"No service client has the client_id {client_id!r}.")
        if client_disable(client=client, via="by manage.py disableclient"):
            self.stdout.write(f"Disabled service client {client.name!r} ({client.client_id}).")
        else:
            self.stdout.write(f"Service client {client.name!r} ({client.client_id}) was already disabled.")
