-- Departures per airline per month, with the airline's name.
SELECT f.year, f.month, f.carrier, a.name AS airline_name, count(*) AS departures
FROM transport.flights AS f
LEFT JOIN transport.airlines AS a ON a.carrier = f.carrier
GROUP BY f.year, f.month, f.carrier, a.name
