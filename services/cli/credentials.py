"""Who may call Looper: ``looper credentials list|create|rotate|revoke`` (a cluster
administrator's commands, through the Access service beside the Trainer)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from services.cli.connection import ClientCommand, connection
from services.cli.output import credential_doc, emit, fields, table, when

ROLES = ("decide", "read", "admin")
CredentialId = Annotated[str, typer.Argument(metavar="CREDENTIAL_ID", help="the credential's id, e.g. cred-0a1b2c3d4e5f",
                                             show_default=False)]


def register(app: typer.Typer) -> None:
    credentials = typer.Typer(help="Credentials and their roles per use case (cluster administrators only).",
                              no_args_is_help=True)
    for name, command in (("list", list_credentials), ("create", create), ("rotate", rotate), ("revoke", revoke)):
        credentials.command(name, cls=ClientCommand)(command)
    app.add_typer(credentials, name="credentials", rich_help_panel="Access")


def list_credentials() -> None:
    """Every credential (never its token)."""
    with connection().client() as client:
        listed = [credential_doc(c) for c in client.list_credentials()]
    rows = [(c["credential_id"], c["name"], "yes" if c["cluster_admin"] else "",
             _grants(c["grants"]), c["certificate_subject"], when(c["create_time"]), when(c["rotate_time"]))
            for c in listed]
    emit({"credentials": listed}, table(None, ["credential", "name", "cluster admin", "grants",
                                               "certificate subject", "created (UTC)", "token changed (UTC)"], rows))


def create(name: Annotated[str, typer.Argument(metavar="NAME", help="who it is for, e.g. checkout-backend", show_default=False)],
           grant: Annotated[Optional[list[str]], typer.Option(
               "--grant", metavar="USE_CASE=ROLE[,ROLE]",
               help=f"roles ({', '.join(ROLES)}) in a use case, or * for every use case; repeatable")] = None,
           cluster_admin: Annotated[bool, typer.Option(
               "--cluster-admin", help="may manage credentials and create use cases")] = False,
           certificate_subject: Annotated[str, typer.Option(
               help="match a client certificate's common name (mutual TLS) instead of issuing a token")] = ""
           ) -> None:
    """Create a credential; its bearer token is printed this once."""
    grants = _parse_grants(grant or [])
    with connection().client() as client:
        credential, token = client.create_credential(name, grants, cluster_admin, certificate_subject)
    doc = credential_doc(credential)
    _show_with_token(doc, token, "created")


def rotate(credential_id: CredentialId) -> None:
    """Replace a credential's token; the old one stops working at once."""
    with connection().client() as client:
        credential, token = client.rotate_credential(credential_id)
    _show_with_token(credential_doc(credential), token, "rotated")


def revoke(credential_id: CredentialId) -> None:
    """Revoke a credential; its token stops working at once."""
    with connection().client() as client:
        doc = credential_doc(client.revoke_credential(credential_id))
    emit({"credential": doc, "revoked": True}, f"revoked {doc['credential_id']} ({doc['name']})")


def _show_with_token(doc: dict, token: str, done: str) -> None:
    emit({"credential": doc, "token": token or None},
         fields(f"{done} {doc['credential_id']}", [
             ("name", doc["name"]), ("cluster admin", doc["cluster_admin"]), ("grants", _grants(doc["grants"])),
             ("certificate subject", doc["certificate_subject"]),
             ("token", token or None)]),
         *(["the token is shown only this once: Looper keeps only its hash"] if token else []))


def _grants(grants: dict[str, list[str]]) -> str:
    return "; ".join(f"{use_case}: {', '.join(roles)}" for use_case, roles in grants.items()) or "-"


def _parse_grants(specs: list[str]) -> dict[str, list[int]]:
    from looperpb.v1 import access_pb2

    grants: dict[str, list[int]] = {}
    for spec in specs:
        use_case, _, roles = spec.partition("=")
        names = [r.strip().lower() for r in roles.split(",") if r.strip()]
        unknown = [r for r in names if r not in ROLES]
        if not use_case or not names or unknown:
            raise typer.BadParameter(f"{spec!r}: expected USE_CASE=ROLE[,ROLE] with roles of {', '.join(ROLES)}",
                                     param_hint="--grant")
        grants.setdefault(use_case, []).extend(access_pb2.Role.Value(f"ROLE_{r.upper()}") for r in names)
    return grants
