"""DRF authentication by Keystone token (``X-Auth-Token``)."""

from rest_framework.authentication import BaseAuthentication

from core.openstack.errors import Unauthorized

from . import tokens


class KeystoneTokenAuthentication(BaseAuthentication):
    """Validates ``X-Auth-Token`` and scopes the request to the token's
    project: ``request.project`` and ``request.membership`` afterwards say
    where the caller acts and with which role."""

    def authenticate(self, request):
        key = request.META.get("HTTP_X_AUTH_TOKEN")
        if not key:
            return None
        token = tokens.validate(key)
        if token is None:
            raise Unauthorized("The request you have made requires authentication.")
        request._request.project = token.project
        request._request.membership = token.membership
        request._request.token = token
        return token.user, token

    def authenticate_header(self, request):
        return 'Keystone uri="/identity/v3"'
