-- A small music-festival database written for mtsql's examples and demo (not taken from any benchmark).
CREATE TABLE artist (
    artist_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    country TEXT,
    genre TEXT,
    formed_year INTEGER
);
CREATE TABLE stage (
    stage_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    capacity INTEGER,
    covered INTEGER
);
CREATE TABLE performance (
    performance_id INTEGER PRIMARY KEY,
    artist_id INTEGER REFERENCES artist(artist_id),
    stage_id INTEGER REFERENCES stage(stage_id),
    day TEXT,
    start_hour INTEGER,
    attendance INTEGER
);
CREATE TABLE album (
    album_id INTEGER PRIMARY KEY,
    artist_id INTEGER REFERENCES artist(artist_id),
    title TEXT NOT NULL,
    release_year INTEGER,
    sales INTEGER
);
INSERT INTO artist VALUES
    (1, 'The Lanterns', 'Ireland', 'Folk', 2009),
    (2, 'Neon Harbor', 'Canada', 'Electronic', 2015),
    (3, 'Marisol Vega', 'Mexico', 'Pop', 2018),
    (4, 'Copper Owls', 'Ireland', 'Rock', 2001),
    (5, 'Kite Theory', 'Japan', 'Electronic', 2012),
    (6, 'Delta Rae Quartet', 'USA', 'Jazz', 1998),
    (7, 'Saltwater Choir', 'Ireland', 'Folk', 2016),
    (8, 'Velvet Static', 'USA', 'Rock', 2010),
    (9, 'Amara Diop', 'Senegal', 'Pop', 2020),
    (10, 'Hollow Pines', 'Canada', 'Rock', 2007);
INSERT INTO stage VALUES
    (1, 'Main Stage', 20000, 0),
    (2, 'Forest Tent', 3000, 1),
    (3, 'Lakeside', 8000, 0),
    (4, 'Jazz Cellar', 500, 1);
INSERT INTO performance VALUES
    (1, 4, 1, 'Friday', 21, 18000),
    (2, 1, 2, 'Friday', 18, 2500),
    (3, 2, 3, 'Friday', 23, 7500),
    (4, 6, 4, 'Friday', 20, 480),
    (5, 3, 1, 'Saturday', 19, 16500),
    (6, 5, 3, 'Saturday', 22, 6000),
    (7, 7, 2, 'Saturday', 16, 1900),
    (8, 8, 1, 'Saturday', 22, 19500),
    (9, 9, 3, 'Sunday', 17, 5200),
    (10, 10, 1, 'Sunday', 20, 14000),
    (11, 1, 3, 'Sunday', 15, 4100),
    (12, 6, 4, 'Sunday', 21, 500),
    (13, 2, 2, 'Sunday', 23, 2900),
    (14, 4, 3, 'Saturday', 14, 3600);
INSERT INTO album VALUES
    (1, 1, 'Harbour Lights', 2011, 42000),
    (2, 1, 'Winter Roads', 2015, 58000),
    (3, 1, 'Salt and Stone', 2021, 31000),
    (4, 2, 'Night Signal', 2017, 120000),
    (5, 2, 'Afterglow', 2022, 95000),
    (6, 3, 'Luz', 2019, 210000),
    (7, 4, 'Rust Belt', 2003, 76000),
    (8, 4, 'Iron Feathers', 2008, 88000),
    (9, 4, 'Burning Wire', 2014, 54000),
    (10, 4, 'Ash and Ember', 2019, 41000),
    (11, 5, 'Paper Skies', 2014, 67000),
    (12, 6, 'Blue Hours', 2000, 23000),
    (13, 6, 'Late Set', 2012, 19000),
    (14, 8, 'Static Bloom', 2013, 81000),
    (15, 10, 'Timberline', 2009, 47000),
    (16, 10, 'Quiet Country', 2018, 39000);
