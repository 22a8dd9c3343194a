-- A chunk may be stored compressed (LZ4 block format) by the front end that wrote it: the
-- front ends, of which there can be many, spend the CPU, and the one shared database stores,
-- reads and sends less. packed_from is the chunk's length before compression; NULL when the
-- chunk is stored as it is (it did not compress, or an older postie wrote it).
ALTER TABLE body_chunks
    ADD COLUMN packed_from INTEGER CHECK (packed_from BETWEEN 1 AND 262144);
