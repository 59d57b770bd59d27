"""Keystone v3: enough of it for the openstack CLI, openstacksdk and Tempest's
identity checks. Token bodies follow keystoneauth's AccessInfoV3 reader."""

from django.contrib.auth import get_user_model
from django.utils.dateparse import parse_datetime
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response

from core.openstack.catalog import catalog, public_url
from core.openstack.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from core.openstack.views import OpenStackAPIView

from .. import services, tokens
from ..choices import ROLE_IDS, ROLE_RANK, Role
from ..models import DEFAULT_DOMAIN_ID, DEFAULT_DOMAIN_NAME, ApplicationCredential, Membership, Project

User = get_user_model()
DOMAIN = {"id": DEFAULT_DOMAIN_ID, "name": DEFAULT_DOMAIN_NAME}


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if dt else None


def require_dict(data, key, where):
    value = data.get(key)
    if not isinstance(value, dict):
        raise BadRequest(f"'{key}' is a required object in {where}.")
    return value


def check_domain(entity):
    """Only the Default domain exists; naming another one is a failed match."""
    domain = entity.get("domain")
    if domain is None:
        return True
    if not isinstance(domain, dict):
        raise BadRequest("'domain' must be an object.")
    return domain.get("id") in (None, DEFAULT_DOMAIN_ID) and domain.get("name") in (None, DEFAULT_DOMAIN_NAME)


def project_ref(project):
    return {"id": project.id, "name": project.name, "domain": DOMAIN, "domain_id": DEFAULT_DOMAIN_ID,
            "description": project.description, "enabled": project.enabled, "is_domain": False,
            "parent_id": DEFAULT_DOMAIN_ID, "tags": [], "options": {}}


def user_ref(user):
    return {"id": user.id, "name": user.username, "domain_id": DEFAULT_DOMAIN_ID, "enabled": user.is_active,
            "email": user.email or None, "password_expires_at": None, "options": {},
            "default_project_id": user.default_project_id}


def roles_of(membership, user):
    """The role a membership implies plus the ones below it, as Keystone's
    implied roles give; operators also carry admin."""
    rank = ROLE_RANK[Role(membership.role)] if membership else -1
    if user.is_staff:
        rank = ROLE_RANK[Role.ADMIN]
    return [{"id": ROLE_IDS[r], "name": r.value} for r in Role if ROLE_RANK[r] <= rank]


def token_body(request, token):
    body = {
        "methods": token.methods,
        "user": {"id": token.user.id, "name": token.user.username, "domain": DOMAIN, "password_expires_at": None},
        "audit_ids": [token.audit_id],
        "expires_at": iso(token.expires_at),
        "issued_at": iso(token.issued_at),
    }
    if token.project_id:
        body["project"] = {"id": token.project.id, "name": token.project.name, "domain": DOMAIN}
        body["is_domain"] = False
        body["roles"] = roles_of(token.membership, token.user)
        body["catalog"] = catalog(request, token.project_id)
    if token.application_credential_id:
        cred = token.application_credential
        body["application_credential"] = {"id": cred.id, "name": cred.name, "restricted": not cred.unrestricted}
    return {"token": body}


class KeystoneView(OpenStackAPIView):
    api_style = "keystone"
    project_scoped = False
    permission_classes = [IsAuthenticated]

    def caller_token(self):
        token = getattr(self.request, "token", None)
        if token is None:
            raise Unauthorized("A token is required (X-Auth-Token).")
        return token


class TokensView(KeystoneView):
    """POST issues; GET/HEAD validate X-Subject-Token; DELETE revokes it."""

    def get_permissions(self):
        if getattr(self.request, "method", None) == "POST":
            return [AllowAny()]
        return super().get_permissions()

    def get_authenticators(self):
        # Password auth must not fail because a stale X-Auth-Token came along.
        # (No request at all while the OpenAPI schema is generated.)
        if getattr(self.request, "method", None) == "POST":
            return []
        return super().get_authenticators()

    def post(self, request):
        auth = require_dict(request.data, "auth", "the request")
        identity = require_dict(auth, "identity", "auth")
        methods = identity.get("methods")
        if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
            raise BadRequest("'identity.methods' must be a non-empty list of method names.")
        expires_at, issued_methods = None, methods[:1]
        if "application_credential" in methods:
            user, project, credential = self._by_application_credential(identity)
        elif "password" in methods:
            user, credential = self._by_password(identity), None
            project = self._scope(auth.get("scope"), user)
        elif "token" in methods:
            original = self._by_token(identity)
            user, credential, project = original.user, None, self._scope(auth.get("scope"), original.user)
            # Keystone keeps the original expiry and adds the original methods.
            expires_at = original.expires_at
            issued_methods = ["token", *(m for m in original.methods if m != "token")]
        else:
            raise Unauthorized(f"Unsupported authentication method {methods[0]!r}.")
        key, token = tokens.issue(user, project, methods=issued_methods, application_credential=credential,
                                  expires_at=expires_at)
        response = Response(token_body(request, token), status=201)
        response["X-Subject-Token"] = key
        return response

    def _by_password(self, identity):
        password = require_dict(identity, "password", "identity")
        user = require_dict(password, "user", "identity.password")
        secret = user.get("password")
        if not isinstance(secret, str):
            raise BadRequest("'password' must be a string.")
        if not check_domain(user):
            raise Unauthorized("The request you have made requires authentication.")
        if not (isinstance(user.get("id"), str) or isinstance(user.get("name"), str)):
            raise BadRequest("The user needs an 'id' or a 'name'.")
        found = services.authenticate_password(password=secret, user_id=user.get("id"), username=user.get("name"))
        if found is None:
            raise Unauthorized("The request you have made requires authentication.")
        return found

    def _by_token(self, identity):
        ref = require_dict(identity, "token", "identity")
        if not isinstance(ref.get("id"), str):
            raise BadRequest("'identity.token.id' must be a string.")
        token = tokens.validate(ref["id"])
        if token is None:
            raise Unauthorized("The token is not valid.")
        if token.application_credential_id:
            raise Forbidden("A token from an application credential cannot be rescoped.")
        return token

    def _by_application_credential(self, identity):
        ref = require_dict(identity, "application_credential", "identity")
        secret = ref.get("secret")
        if not isinstance(secret, str):
            raise BadRequest("'secret' must be a string.")
        owner = None
        if not ref.get("id"):
            user = ref.get("user")
            if not isinstance(user, dict):
                raise BadRequest("An application credential by name needs its 'user'.")
            owner = User.objects.filter(pk=user["id"]).first() if user.get("id") else \
                User.objects.filter(username=user.get("name")).first()
        credential = services.authenticate_application_credential(
            secret=secret, credential_id=ref.get("id"), name=ref.get("name"), user=owner
        )
        if credential is None:
            raise Unauthorized("The request you have made requires authentication.")
        return credential.user, credential.project, credential

    def _scope(self, scope, user):
        if scope is None:
            if user.default_project_id and self._member(user, user.default_project):
                return user.default_project
            return None
        if scope == "unscoped" or scope == {"unscoped": {}}:
            return None  # explicitly unscoped, even with a default project (keystoneauth's unscoped=True)
        if not isinstance(scope, dict):
            raise BadRequest("'scope' must be an object.")
        if "project" not in scope:
            if "system" in scope or "domain" in scope:
                raise Unauthorized("Only project scope is supported.")
            raise BadRequest("Unknown scope.")
        ref = scope["project"]
        if not isinstance(ref, dict):
            raise BadRequest("'scope.project' must be an object.")
        if ref.get("id"):
            project = Project.objects.filter(pk=ref["id"]).first()
        elif ref.get("name") and check_domain(ref):
            project = Project.objects.filter(name=ref["name"]).first()
        else:
            project = None
        if project is None or not project.enabled or not self._member(user, project):
            raise Unauthorized("User has no access to project.")
        return project

    @staticmethod
    def _member(user, project):
        return Membership.objects.filter(user=user, project=project).exists()

    def _subject(self, request):
        self.caller_token()
        token = tokens.validate(request.META.get("HTTP_X_SUBJECT_TOKEN", ""))
        if token is None:
            raise NotFound("Could not find token.")
        return token

    def get(self, request):
        return Response(token_body(request, self._subject(request)))

    def head(self, request):
        self._subject(request)
        return Response(status=200)

    def delete(self, request):
        self.caller_token()
        if not tokens.revoke(request.META.get("HTTP_X_SUBJECT_TOKEN", "")):
            raise NotFound("Could not find token.")
        return Response(status=204)


class AuthProjectsView(KeystoneView):
    def get(self, request):
        projects = Project.objects.filter(memberships__user=request.user, enabled=True).distinct()
        return Response({"projects": [project_ref(p) for p in projects], "links": self.links()})

    def links(self):
        return {"self": self.request.build_absolute_uri(), "previous": None, "next": None}


class AuthCatalogView(KeystoneView):
    def get(self, request):
        token = self.caller_token()
        if token.project_id is None:  # as Keystone: an unscoped token has no catalog
            raise Forbidden("A project-scoped token is required to produce a service catalog.")
        return Response({"catalog": catalog(request, token.project_id),
                         "links": {"self": request.build_absolute_uri()}})


class ProjectsView(AuthProjectsView):
    """Operators see every project; everybody else the ones they belong to."""

    def visible(self):
        if self.request.user.is_staff:
            return Project.objects.all()
        return Project.objects.filter(memberships__user=self.request.user).distinct()

    def get(self, request, project_id=None):
        if project_id is not None:
            project = self.get_or_404(self.visible(), f"Could not find project: {project_id}.", pk=project_id)
            return Response({"project": project_ref(project)})
        projects = self.visible()
        if "name" in request.query_params:
            projects = projects.filter(name=request.query_params["name"])
        return Response({"projects": [project_ref(p) for p in projects], "links": self.links()})


class UsersView(KeystoneView):
    def get(self, request, user_id):
        if user_id != request.user.id and not request.user.is_staff:
            raise Forbidden()
        user = self.get_or_404(User.objects.all(), f"Could not find user: {user_id}.", pk=user_id)
        return Response({"user": user_ref(user)})


class UserProjectsView(AuthProjectsView):
    def get(self, request, user_id):
        if user_id != request.user.id and not request.user.is_staff:
            raise Forbidden()
        projects = Project.objects.filter(memberships__user_id=user_id).distinct()
        return Response({"projects": [project_ref(p) for p in projects], "links": self.links()})


class DomainsView(KeystoneView):
    def get(self, request, domain_id=None):
        domain = {**DOMAIN, "description": "The default domain", "enabled": True, "tags": [], "options": {},
                  "links": {"self": public_url(request) + "/identity/v3/domains/default"}}
        if domain_id is None:
            return Response({"domains": [domain], "links": {"self": request.build_absolute_uri()}})
        if domain_id != DEFAULT_DOMAIN_ID:
            raise NotFound(f"Could not find domain: {domain_id}.")
        return Response({"domain": domain})


def credential_ref(request, cred, secret=None):
    ref = {"id": cred.id, "name": cred.name, "description": cred.description or None,
           "project_id": cred.project_id, "user_id": cred.user_id, "expires_at": iso(cred.expires_at),
           "unrestricted": cred.unrestricted, "roles": [{"id": ROLE_IDS[Role(cred.role)], "name": cred.role}],
           "access_rules": [], "system": None,
           "links": {"self": f"{public_url(request)}/identity/v3/users/{cred.user_id}"
                             f"/application_credentials/{cred.id}"}}
    if secret is not None:
        ref["secret"] = secret
    return ref


class ApplicationCredentialsView(KeystoneView):
    def owned(self, user_id):
        if user_id != self.request.user.id:
            raise Forbidden("You can only manage your own application credentials.")
        return ApplicationCredential.objects.filter(user_id=user_id)

    def get(self, request, user_id, credential_id=None):
        creds = self.owned(user_id)
        if credential_id is not None:
            cred = self.get_or_404(creds, f"Could not find Application Credential: {credential_id}.", pk=credential_id)
            return Response({"application_credential": credential_ref(request, cred)})
        if "name" in request.query_params:
            creds = creds.filter(name=request.query_params["name"])
        return Response({"application_credentials": [credential_ref(request, c) for c in creds],
                         "links": {"self": request.build_absolute_uri(), "previous": None, "next": None}})

    def post(self, request, user_id, credential_id=None):
        self.owned(user_id)
        token = self.caller_token()
        if token.application_credential_id and not token.application_credential.unrestricted:
            raise Forbidden("A restricted application credential cannot create another.")
        if token.project_id is None:
            raise Forbidden("Application credentials need a project-scoped token.")
        ref = require_dict(request.data, "application_credential", "the request")
        name = ref.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise BadRequest("'name' must be a non-blank string of at most 255 characters.")
        unknown = set(ref) - {"name", "description", "secret", "expires_at", "roles", "unrestricted", "access_rules"}
        if unknown:
            raise BadRequest(f"Unknown attributes: {', '.join(sorted(unknown))}.")
        expires_at = None
        if ref.get("expires_at"):
            expires_at = parse_datetime(str(ref["expires_at"]).replace("Z", "+00:00"))
            if expires_at is None:
                raise BadRequest("'expires_at' must be an ISO 8601 timestamp.")
            if expires_at.tzinfo is None:
                from datetime import UTC
                expires_at = expires_at.replace(tzinfo=UTC)
        secret = ref.get("secret")
        if secret is not None and (not isinstance(secret, str) or len(secret) < 8):
            raise BadRequest("'secret' must be a string of at least 8 characters.")
        unrestricted = ref.get("unrestricted", False)
        if not isinstance(unrestricted, bool):  # bool("false") is True: only a JSON boolean will do
            raise BadRequest("'unrestricted' must be a boolean.")
        role = None
        if ref.get("roles"):
            if not isinstance(ref["roles"], list):
                raise BadRequest("'roles' must be a list of {\"name\": ...} objects.")
            names = [r.get("name") for r in ref["roles"] if isinstance(r, dict)]
            valid = [Role(n) for n in names if n in Role.values]
            if len(valid) != len(ref["roles"]):
                raise BadRequest("Unknown role in 'roles'.")
            role = max(valid, key=lambda r: ROLE_RANK[r])
            if token.membership is None or ROLE_RANK[role] > ROLE_RANK[Role(token.membership.role)]:
                raise Forbidden("You cannot delegate a role you do not have.")
        try:
            cred, secret = services.create_application_credential(
                user=request.user, project=token.project, name=name.strip(), secret=secret,
                description=str(ref.get("description") or ""), expires_at=expires_at, role=role,
                unrestricted=unrestricted,
            )
        except Conflict:
            raise
        return Response({"application_credential": credential_ref(request, cred, secret)}, status=201)

    def delete(self, request, user_id, credential_id=None):
        cred = self.get_or_404(self.owned(user_id), f"Could not find Application Credential: {credential_id}.",
                               pk=credential_id)
        services.delete_application_credential(cred)
        return Response(status=204)
