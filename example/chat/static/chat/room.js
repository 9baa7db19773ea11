// Chat room: send {"message"}, receive {"message", "username"}.
const roomName = JSON.parse(document.getElementById("room-name").textContent);
const log = document.getElementById("chat-log");
const input = document.getElementById("chat-message-input");

const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
const chatSocket = new WebSocket(scheme + window.location.host + "/ws/chat/" + roomName + "/");

chatSocket.onopen = function () {
  document.getElementById("status").textContent = "connected";
};

chatSocket.onmessage = function (e) {
  const data = JSON.parse(e.data);
  if (data.error) {
    log.value += "! " + data.error + "\n";
  } else {
    log.value += data.username + ": " + data.message + "\n";
  }
  log.scrollTop = log.scrollHeight;
};

chatSocket.onclose = function (e) {
  document.getElementById("status").textContent =
    "disconnected (code " + e.code + "); reload the page to reconnect";
};

function send() {
  const message = input.value;
  if (message.trim() !== "") {
    chatSocket.send(JSON.stringify({ message: message }));
  }
  input.value = "";
  input.focus();
}

input.addEventListener("keyup", function (e) {
  if (e.key === "Enter") {
    send();
  }
});
document.getElementById("chat-message-submit").addEventListener("click", send);
