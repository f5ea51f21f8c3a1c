CREATE MATERIALIZED VIEW view_of_view AS SELECT * FROM big_view WHERE double > 4;
