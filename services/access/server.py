"""gRPC adapter of the Access service: only cluster administrators reach it (see AUTH_RULES),
and every change is written to the audit log."""

from __future__ import annotations

import re

from looperpb.v1 import access_pb2, access_pb2_grpc

from services.platform.audit import AuditLog
from services.platform.auth import CLUSTER_ADMIN, Credential, CredentialStore, Role
from services.platform.errors import InvalidArgument
from services.platform.grpc_runtime import ServiceBinding, rpc_method
from services.platform.paging import page
from services.platform.validation import Violations, is_valid_name
from services.platform.wire import iso_timestamp

_CREDENTIAL_NAME = re.compile(r"[a-z][a-z0-9_\-]{0,62}")
_CREDENTIAL_ID = re.compile(r"cred-[0-9a-f]{12}")


def credential_to_proto(credential: Credential) -> access_pb2.Credential:
    return access_pb2.Credential(
        credential_id=credential.credential_id, name=credential.name,
        certificate_subject=credential.certificate_subject, cluster_admin=credential.cluster_admin,
        grants=[access_pb2.Grant(use_case=use_case, roles=sorted(int(r) for r in roles))
                for use_case, roles in sorted(credential.grants.items())],
        create_time=iso_timestamp(credential.create_time), rotate_time=iso_timestamp(credential.rotate_time))


def grants_from_proto(grants) -> dict[str, frozenset[Role]]:
    v = Violations()
    result: dict[str, frozenset[Role]] = {}
    for i, grant in enumerate(grants):
        if grant.use_case != "*" and not is_valid_name(grant.use_case):
            v.add(f"grants[{i}].use_case", "must be a use case name or *")
        roles = set()
        for j, role in enumerate(grant.roles):
            if role not in (Role.DECIDE, Role.READ, Role.ADMIN):
                v.add(f"grants[{i}].roles[{j}]", "must be ROLE_DECIDE, ROLE_READ or ROLE_ADMIN")
            else:
                roles.add(Role(role))
        result[grant.use_case] = result.get(grant.use_case, frozenset()) | frozenset(roles)
    v.raise_if_any()
    return result


def _require_credential_id(credential_id: str) -> None:
    if not _CREDENTIAL_ID.fullmatch(credential_id):
        raise InvalidArgument.single("credential_id", "must be a credential id like cred-0123456789ab")


class AccessServicer(access_pb2_grpc.AccessServiceServicer):
    def __init__(self, store: CredentialStore, audit: AuditLog):
        self.store, self.audit = store, audit

    @rpc_method
    def CreateCredential(self, request, context):
        v = Violations()
        if not _CREDENTIAL_NAME.fullmatch(request.name):
            v.add("name", "must be 1-63 characters of a-z, 0-9, _ and -, starting with a letter")
        if len(request.certificate_subject) > 256:
            v.add("certificate_subject", "must be at most 256 characters")
        v.raise_if_any()
        grants = grants_from_proto(request.grants)
        credential, token = self.store.create(request.name, grants, request.cluster_admin,
                                              request.certificate_subject)
        self.audit.record("create_credential", credential_id=credential.credential_id, name=credential.name,
                          cluster_admin=credential.cluster_admin)
        return access_pb2.CreateCredentialResponse(credential=credential_to_proto(credential), token=token)

    @rpc_method
    def ListCredentials(self, request, context):
        credentials, token = page(self.store.list(), lambda c: c.credential_id, request.page_size,
                                  request.page_token, "credentials")
        return access_pb2.ListCredentialsResponse(credentials=[credential_to_proto(c) for c in credentials],
                                                  next_page_token=token)

    @rpc_method
    def RotateCredential(self, request, context):
        _require_credential_id(request.credential_id)
        credential, token = self.store.rotate(request.credential_id)
        self.audit.record("rotate_credential", credential_id=credential.credential_id)
        return access_pb2.RotateCredentialResponse(credential=credential_to_proto(credential), token=token)

    @rpc_method
    def RevokeCredential(self, request, context):
        _require_credential_id(request.credential_id)
        credential = self.store.revoke(request.credential_id)
        self.audit.record("revoke_credential", credential_id=credential.credential_id)
        return access_pb2.RevokeCredentialResponse(credential=credential_to_proto(credential))


AUTH_RULES = {method: (lambda r: [CLUSTER_ADMIN]) for method in
              ("CreateCredential", "ListCredentials", "RotateCredential", "RevokeCredential")}


def binding(store: CredentialStore, audit: AuditLog) -> ServiceBinding:
    return ServiceBinding(
        name=access_pb2.DESCRIPTOR.services_by_name["AccessService"].full_name,
        servicer=AccessServicer(store, audit),
        register=access_pb2_grpc.add_AccessServiceServicer_to_server,
        auth_rules=AUTH_RULES,
    )
