"""HTTP views of the demo: pages that open WebSockets."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from chat.ticker import COINS

MAX_ROOM_NAME = 64


def index(request: HttpRequest) -> HttpResponse:
    """Pick a chat room (``?room=name`` goes there), or open the ticker or the echo."""
    room_name = request.GET.get("room", "").strip()
    error = ""
    if room_name:
        if _valid_room(room_name):
            return redirect("room", room_name=room_name)
        error = "Room names use letters, digits, '-' and '_' (at most 64)."
    return render(request, "chat/index.html", {"error": error, "room_name": room_name})


@login_required
def room(request: HttpRequest, room_name: str) -> HttpResponse:
    """A chat room page; its JavaScript joins ``/ws/chat/<room_name>/``."""
    if not _valid_room(room_name):
        raise Http404("No such room")
    return render(request, "chat/room.html", {"room_name": room_name})


def ticker(request: HttpRequest) -> HttpResponse:
    """Live coin prices over ``/ws/ticker/``.

    Starts a session (if there is none) so the WebSocket consumer can remember
    the chosen coin in it, as the Channels 1 demo did with its channel session.
    """
    coin = request.session.setdefault("coin", "btc")
    return render(request, "chat/ticker.html", {"coins": COINS, "coin": coin})


def echo(request: HttpRequest) -> HttpResponse:
    """A WebSocket echo over ``/ws/echo/`` (a bare ASGI application)."""
    return render(request, "chat/echo.html")


def _valid_room(name: str) -> bool:
    return (
        0 < len(name) <= MAX_ROOM_NAME
        and name.isascii()
        and all(c.isalnum() or c in "-_" for c in name)
    )
