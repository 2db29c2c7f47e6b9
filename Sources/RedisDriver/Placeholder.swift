// module RedisDriver
