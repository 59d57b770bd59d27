"""``limit``/``marker`` pagination, as every OpenStack list API does it."""

from urllib.parse import urlencode

from django.db.models import Q

from .errors import BadRequest
from .views import parse_int

MAX_LIMIT = 1000


def paginate(request, queryset, *, sort_key="pk", marker_field="pk", max_limit=MAX_LIMIT, descending=False):
    """Return ``(rows, next_url)`` for the page after ``?marker=`` holding at
    most ``?limit=`` rows, ordered by ``sort_key`` then primary key.

    An unknown marker or a bad limit is a 400 (as in Nova and Cinder).
    ``next_url`` is None on the last page.
    """
    params = request.query_params
    limit = max_limit
    if "limit" in params:
        limit = min(parse_int(params["limit"], "limit", minimum=0), max_limit)
    sign, after = ("-", "lt") if descending else ("", "gt")
    queryset = queryset.order_by(sign + sort_key, sign + "pk")
    marker = params.get("marker")
    if marker:
        try:
            # Only a row the caller can see may be a marker: looking it up
            # anywhere else would tell a hidden row's existence (and another
            # user's key pair of the same name would make it ambiguous).
            anchor = queryset.filter(**{marker_field: marker}).values(sort_key, "pk").get()
        except (queryset.model.DoesNotExist, queryset.model.MultipleObjectsReturned, ValueError):
            raise BadRequest(f"Marker {marker} could not be found.") from None
        queryset = queryset.filter(
            Q(**{f"{sort_key}__{after}": anchor[sort_key]})
            | Q(**{sort_key: anchor[sort_key], f"pk__{after}": anchor["pk"]})
        )
    rows = list(queryset[: limit + 1])
    next_url = None
    if len(rows) > limit:
        rows = rows[:limit]
        if rows:
            query = {k: v for k, v in params.lists() if k != "marker"}
            query["marker"] = [str(getattr(rows[-1], marker_field))]
            next_url = request.build_absolute_uri(request.path) + "?" + urlencode(query, doseq=True)
    return rows, next_url


def links(collection, next_url):
    """Nova/Cinder/Neutron style ``<collection>_links``, or nothing."""
    return {f"{collection}_links": [{"rel": "next", "href": next_url}]} if next_url else {}
