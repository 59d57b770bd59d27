from django.urls import path

from compute.consumers import ConsoleConsumer
from compute.vncproxy import VNCProxyConsumer
from dashboard.consumers import StatusConsumer

websocket_urlpatterns = [
    path("ws/status/", StatusConsumer.as_asgi()),
    path("ws/console/<str:instance_id>/", ConsoleConsumer.as_asgi()),
    path("ws/vnc/", VNCProxyConsumer.as_asgi()),
]
