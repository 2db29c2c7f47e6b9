// module RunQueueServer
