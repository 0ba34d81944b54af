// Live board: on each server-sent "market" event, fetch the board fragment and swap it in.
(function () {
  const board = document.getElementById("board");
  const live = document.getElementById("live");
  if (!board || !window.EventSource) return;
  const source = new EventSource("/events");
  source.onopen = function () { live.dataset.state = "open"; };
  source.onerror = function () { live.dataset.state = "reconnecting"; };
  source.addEventListener("market", async function () {
    const response = await fetch(board.dataset.fragment, { credentials: "same-origin" });
    if (response.ok) {
      board.innerHTML = await response.text();
      board.dataset.updates = String(Number(board.dataset.updates || "0") + 1);
    }
  });
})();
