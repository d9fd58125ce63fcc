// The Find page's map: the results of the list on this page, as markers (Leaflet, served from our
// own origin). The list stays the primary view; this only enhances it. Tiles come from the tile
// server the deployment configures (ENTRAIDE_MAP_TILES_URL); without one, the markers sit on a blank map.
import { control, divIcon, latLngBounds, map as leafletMap, marker, tileLayer } from "/static/leaflet/leaflet-src.esm.js";

const box = document.querySelector(".find-map-box");
const element = document.getElementById("find-map");
const data = document.getElementById("find-map-data");

function popup(place) {
  const link = document.createElement("a");
  link.href = place.url;
  link.textContent = place.title;
  const price = document.createElement("p");
  price.textContent = place.price;
  const content = document.createElement("div");
  content.append(link, price);
  return content;
}

if (box && element && data) {
  const places = JSON.parse(data.textContent);
  box.hidden = false;
  const tiles = element.dataset.tiles;
  // The tile provider's credit is page text under the map (server-rendered, escaped), not Leaflet's HTML control.
  const map = leafletMap(element, { zoomControl: false, attributionControl: false });
  control.zoom({ zoomInTitle: element.dataset.zoomIn, zoomOutTitle: element.dataset.zoomOut }).addTo(map);
  if (tiles) {
    tileLayer(tiles, { maxZoom: 19 }).addTo(map);
  }
  const bounds = latLngBounds([]);
  for (const place of places) {
    const icon = divIcon({ className: "find-marker", iconSize: [22, 22] });
    marker([place.lat, place.lng], { icon, title: place.title, keyboard: true }).bindPopup(popup(place)).addTo(map);
    bounds.extend([place.lat, place.lng]);
  }
  map.fitBounds(bounds, { maxZoom: 15, padding: [32, 32] });
  element.dataset.markers = String(places.length);
}
