"""HTTP routes. WebSocket routes live in chat/routing.py."""

from django.urls import include, path

from chat import views

urlpatterns = [
    path("", views.index, name="index"),
    path("chat/<slug:room_name>/", views.room, name="room"),
    path("ticker/", views.ticker, name="ticker"),
    path("echo/", views.echo, name="echo"),
    path("accounts/", include("django.contrib.auth.urls")),
]
