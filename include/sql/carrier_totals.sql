-- Departures per airline over the whole year: a cut over a cut, refreshed after it.
SELECT carrier, airline_name, sum(departures)::bigint AS departures
FROM transport.flights_per_carrier_month
GROUP BY carrier, airline_name
