// Echo: every message comes back unchanged from a bare ASGI application.
const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
const socket = new WebSocket(scheme + window.location.host + "/ws/echo/");
const input = document.getElementById("echo-input");
const log = document.getElementById("echo-log");
const status = document.getElementById("status");

socket.onopen = function () {
  status.textContent = "connected";
};

socket.onmessage = function (e) {
  const item = document.createElement("li");
  item.textContent = e.data;
  log.prepend(item);
};

socket.onclose = function (e) {
  status.textContent = "disconnected (code " + e.code + "); reload the page to reconnect";
};

function send() {
  socket.send(input.value);
  input.value = "";
  input.focus();
}

input.addEventListener("keyup", function (e) {
  if (e.key === "Enter") {
    send();
  }
});
document.getElementById("echo-send").addEventListener("click", send);
