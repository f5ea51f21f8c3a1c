CREATE MATERIALIZED VIEW "Report ""Q1"" Ü" AS
SELECT "Key Col", sum("Val") AS "Total Val"
FROM "Odd ""Name"" Ü"
GROUP BY "Key Col";
