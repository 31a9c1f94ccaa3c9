-- Per room, the readings taken in the hour before the query: a plain view, read live.
SELECT
    building,
    room,
    count(*) AS readings,
    avg(temperature_c) AS mean_temperature_c,
    min(temperature_c) AS min_temperature_c,
    max(temperature_c) AS max_temperature_c,
    avg(humidity_percent) AS mean_humidity_percent,
    max("timestamp") AS last_reading_at
FROM sensors.readings
WHERE "timestamp" >= now() - interval '1 hour'
GROUP BY building, room
