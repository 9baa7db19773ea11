// Coin ticker: receive {"coin", "name", "price", "at"}; send {"coin"} to switch.
const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
const socket = new WebSocket(scheme + window.location.host + "/ws/ticker/");
const status = document.getElementById("status");

socket.onopen = function () {
  status.textContent = "connected";
};

socket.onmessage = function (e) {
  const data = JSON.parse(e.data);
  if (data.error) {
    status.textContent = data.error;
    return;
  }
  document.getElementById("coin-name").textContent = data.name;
  document.getElementById("coin-price").textContent = data.price.toFixed(2);
  for (const button of document.querySelectorAll("button.coin")) {
    button.classList.toggle("active", button.dataset.coin === data.coin);
  }
};

socket.onclose = function (e) {
  status.textContent = "disconnected (code " + e.code + "); reload the page to reconnect";
};

for (const button of document.querySelectorAll("button.coin")) {
  button.addEventListener("click", function () {
    socket.send(JSON.stringify({ coin: button.dataset.coin }));
  });
}
